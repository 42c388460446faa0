"""monitoring/: the alert rules and the Prometheus config pass ``promtool`` (when it is installed), the
rules fire as ``alerts_test.yml`` says (a due backlog with only retry-safe attempts is "no dials"),
and every outdial metric the rules and the Grafana dashboard query is one ``/metrics`` serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from outdial.api.app import create_app
from outdial.services.providers.accounts import load_accounts
from outdial.settings import Settings

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PROMTOOL = shutil.which("promtool")
METRIC = re.compile(r"\boutdial_[a-z_]+")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
@pytest.mark.parametrize(
    "args",
    [["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]],
    ids=["rules", "config", "rule-tests"],
)
def test_promtool_accepts_the_rules_and_the_config(args: list[str]) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_named_in_the_issue_are_there() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert names == {
        "OutdialCircuitBreakerOpen",
        "OutdialUnknownRateHigh",
        "OutdialDispatchLate",
        "OutdialNoDialsWhileDue",
    }
    assert "alerts.yml" in yaml.safe_load((MONITORING / "prometheus.yml").read_text())["rule_files"]


def queried() -> set[str]:
    rules = (MONITORING / "alerts.yml").read_text()
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "outdial.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any("outdial_call_outcomes_total" in e and "completed" in e and "/" in e for e in exprs), "answer rate"
    return set(METRIC.findall(rules + "\n".join(exprs)))


def test_every_metric_the_rules_and_dashboard_query_is_served(
    settings: Settings, engine: Engine, redis_url: str
) -> None:
    settings.redis_url = redis_url
    app = create_app(settings, engine, load_accounts(settings.accounts_file))
    text = TestClient(app).get("/metrics").text
    served = set()
    for family in text_string_to_metric_families(text):
        served.add(family.name)
        served.update(s.name for s in family.samples)
    missing = queried() - served
    assert not missing, f"queried but not served: {sorted(missing)}"
