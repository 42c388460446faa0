"""docker-compose.yml, the Dockerfile and monitoring/ checked against the code (no Docker engine here).

Every command must be a real ``outdial`` subcommand with real options, every
``OUTDIAL_*`` name a setting or a credential variable of the accounts file,
ports and healthchecks must point at what the commands listen on and routes
that exist, no secret value may be written down, and the dashboard may only
ask for metrics that ``/metrics`` exposes.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from fastapi.testclient import TestClient

from outdial.api.app import create_app
from outdial.cli import app as outdial_cli
from outdial.settings import Settings
from outdial.store.db import make_engine

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OUTDIAL_SERVICES = [name for name, svc in SERVICES.items() if "build" in svc]
CORE = {"redis", "postgres", "migrate", "api", "scheduler", "worker", "flower"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|AUTH|API_KEY|TOKEN", re.I)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def setting_env_names() -> set[str]:
    return {f"OUTDIAL_{name.upper()}" for name in Settings.model_fields}


def account_env_names() -> set[str]:
    """Credential variables of the shipped accounts, and the variables its URLs expand (``${VAR:-default}``)."""
    text = (REPO / "config" / "accounts.toml").read_text()
    accounts = tomllib.loads(text)["accounts"]
    names = set(INTERPOLATION.findall(text))
    for raw in accounts.values():
        names |= set(raw.get("credentials", {}).values())
        if raw.get("webhook_secret"):
            names.add(raw["webhook_secret"])
    return names


def parse_command(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Resolve ``args`` as ``outdial`` would: the subcommand's path and its parsed options (raises if invalid)."""
    command: Any = typer.main.get_command(outdial_cli)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "list_commands"):  # a group (typer vendors its own click)
        name = rest.pop(0)
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"outdial has no command {' '.join([*path, name])!r}"
        path.append(name)
        command = sub
    ctx = command.make_context(" ".join(["outdial", *path]), rest)
    return " ".join(path), dict(ctx.params)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def routes(app: Any) -> set[str]:
    """The paths an app serves, from its OpenAPI document (public, unlike the router's internals)."""
    return set(app.openapi()["paths"])


@pytest.fixture(scope="module")
def api_routes() -> set[str]:
    app = create_app(Settings(), make_engine("sqlite://"), accounts={})
    return routes(app)


def simulator_routes() -> set[str]:
    from outdial.simulator.app import create_app as create_simulator

    return routes(create_simulator().app)


def flower_routes() -> set[str]:
    from flower.urls import handlers

    return {h[0] if isinstance(h, tuple) else h.regex.pattern.rstrip("$") for h in handlers}


def test_production_services_and_profiles() -> None:
    assert set(SERVICES) >= CORE | {"simulator", "prometheus", "grafana"}
    for name in CORE:
        assert "profiles" not in SERVICES[name], name
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    assert SERVICES["grafana"]["profiles"] == ["monitoring"]


@pytest.mark.parametrize("name", OUTDIAL_SERVICES)
def test_every_command_is_a_real_outdial_command(name: str) -> None:
    path, _ = parse_command(SERVICES[name]["command"])
    expected = {"migrate": "db upgrade"}.get(name, name)
    assert path == expected


def test_roles_start_after_a_successful_migration() -> None:
    for name in ("api", "scheduler", "worker", "flower"):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert SERVICES["migrate"]["restart"] == "no"


def healthcheck_url(service: dict[str, Any]) -> str | None:
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    found = re.search(r"https?://[^'\" ]+", test)
    return found.group(0) if found else None


@pytest.mark.parametrize("name", [n for n in OUTDIAL_SERVICES if "port" in parse_command(SERVICES[n]["command"])[1]])
def test_ports_and_healthchecks_match_what_the_command_listens_on(name: str, api_routes: set[str]) -> None:
    service = SERVICES[name]
    _, params = parse_command(service["command"])
    port = params["port"]
    assert params["host"] == "0.0.0.0", "inside a container the service must listen beyond loopback"
    published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    assert published == [str(port)], f"{name} publishes {published}, listens on {port}"
    url = healthcheck_url(service)
    assert url is not None, f"{name} has no HTTP healthcheck"
    parts = urlsplit(url)
    assert parts.port == port
    known = {"api": lambda: api_routes, "simulator": simulator_routes, "flower": flower_routes}[name]()
    assert parts.path in known, f"{name} healthcheck {parts.path} is not a route"


def test_api_healthcheck_uses_readyz_and_readyz_and_healthz_exist(api_routes: set[str]) -> None:
    assert {"/healthz", "/readyz", "/metrics"} <= api_routes
    assert urlsplit(healthcheck_url(SERVICES["api"]) or "").path == "/readyz"


def compose_variable_names() -> set[str]:
    names = set()
    for service in SERVICES.values():
        names |= set(environment(service))
    names |= set(INTERPOLATION.findall((REPO / "docker-compose.yml").read_text()))
    return names


def test_every_outdial_variable_is_a_setting_or_an_account_credential() -> None:
    known = setting_env_names() | account_env_names()
    example = (REPO / ".env.example").read_text()
    example_names = set(re.findall(r"^#?\s*(OUTDIAL_[A-Z0-9_]+)=", example, re.M))
    used = {n for n in compose_variable_names() | example_names if n.startswith("OUTDIAL_")}
    assert used, "no OUTDIAL_ variables found"
    assert used - known == set()
    assert {"OUTDIAL_DATABASE_URL", "OUTDIAL_REDIS_URL", "OUTDIAL_PUBLIC_URL", "OUTDIAL_SIMULATOR_URL"} <= used
    # .env.example gives every credential variable the shipped accounts name.
    credentials = {
        n
        for n in account_env_names()
        if n not in INTERPOLATION.findall((REPO / "config" / "accounts.toml").read_text())
    }
    assert credentials <= example_names


def test_no_secret_value_is_written_in_compose() -> None:
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), f"{name}.{key} must be ${{VAR:?}}"
        url = environment(service).get("OUTDIAL_DATABASE_URL")
        if url:
            password = re.search(r"://[^:/@]+:(.*)@", url)
            assert password and re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", password.group(1)), (
                f"{name}: the database password must come from the environment"
            )
    text = (REPO / "docker-compose.yml").read_text()
    for line in (REPO / ".env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            if SECRET_NAME.search(key):
                assert value not in text, f"the value of {key} is written in docker-compose.yml"
    assert environment(SERVICES["flower"])["OUTDIAL_FLOWER_BASIC_AUTH"].startswith("${OUTDIAL_FLOWER_BASIC_AUTH:?")


def test_metrics_are_summed_over_api_scheduler_and_worker_processes() -> None:
    counting = ("api", "scheduler", "worker")
    dirs = {environment(SERVICES[n]).get("PROMETHEUS_MULTIPROC_DIR") for n in counting}
    assert len(dirs) == 1 and None not in dirs
    (shared,) = dirs
    for name in counting:
        mounts = {str(v).split(":")[1] for v in SERVICES[name]["volumes"]}
        assert shared in mounts, f"{name} must mount the shared metrics directory"


def dockerfile_final_stage() -> list[str]:
    lines = [ln.strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last_from:]


def test_one_slim_non_root_image_with_outdial_as_entrypoint() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install \.$", text, re.M)
    final = dockerfile_final_stage()
    assert final[0] == "FROM python:3.11-slim"
    users = [ln.split()[1] for ln in final if ln.upper().startswith("USER ")]
    assert users and users[-1] not in {"root", "0", "0:0"}
    entrypoint = [ln for ln in final if ln.upper().startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint[-1].split(" ", 1)[1]) == ["outdial"]
    # One image for every role: each outdial service builds the same context.
    assert {str(SERVICES[n].get("build")) for n in OUTDIAL_SERVICES} == {"."}
    # The installed package finds the accounts file the image ships.
    assert "OUTDIAL_ACCOUNTS_FILE=/etc/outdial/accounts.toml" in text
    assert "COPY config/accounts.toml /etc/outdial/accounts.toml" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored


def test_prometheus_scrapes_the_api_and_grafana_gets_the_dashboard(api_routes: set[str]) -> None:
    prometheus = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] in api_routes
    _, params = parse_command(SERVICES["api"]["command"])
    assert job["static_configs"][0]["targets"] == [f"api:{params['port']}"]
    for volume in SERVICES["grafana"]["volumes"] + SERVICES["prometheus"]["volumes"]:
        source = str(volume).split(":")[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), source


def test_dashboard_asks_only_for_metrics_that_are_exposed(sqlite_url: str, redis_url: str) -> None:
    app = create_app(Settings(redis_url=redis_url), make_engine(sqlite_url), accounts={})
    exposed_text = TestClient(app).get("/metrics").text
    exposed = {re.sub(r"_total$", "", n) for n in re.findall(r"^# TYPE (\S+)", exposed_text, re.M)}
    dashboard = json.loads((REPO / "monitoring" / "grafana" / "dashboards" / "outdial.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    asked = {re.sub(r"_(bucket|count|sum|total)$", "", n) for e in exprs for n in re.findall(r"outdial_\w+", e)}
    assert asked, "the dashboard has no outdial queries"
    assert asked - exposed == set()
    wanted = {
        "outdial_jobs",
        "outdial_attempts",
        "outdial_provider_latency_seconds",
        "outdial_dispatch_lateness_seconds",
        "outdial_queue_depth",
        "outdial_pacing_waits",
        "outdial_circuit_breakers_open",
    }
    assert wanted <= asked


def test_uploads_are_on_a_data_directory_the_api_and_workers_share() -> None:
    # The API stores an upload under OUTDIAL_DATA_DIR and a worker imports it from there.
    data_dir = re.search(r"OUTDIAL_DATA_DIR=(\S+)", (REPO / "Dockerfile").read_text())
    assert data_dir is not None
    assert f"mkdir -p /var/lib/outdial/metrics {data_dir[1]}" in (REPO / "Dockerfile").read_text()
    for name in ("api", "worker"):
        assert environment(SERVICES[name]).get("OUTDIAL_DATA_DIR", data_dir[1]) == data_dir[1]
        volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in SERVICES[name]["volumes"]}
        assert volumes.get(data_dir[1]) == "data", f"{name} must mount the shared data volume at {data_dir[1]}"
    assert "data" in COMPOSE["volumes"]
