"""``outdial up`` (the whole stack) and ``outdial demo`` (a campaign run on it, start to finish)."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import time
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from outdial.settings import Settings
    from outdial.stack import Stack


@cache
def console() -> Console:
    """Progress goes to stderr (made on first use: rich is not imported for ``--help``)."""
    from rich.console import Console

    return Console(stderr=True)


def refuse_to_share(settings: Settings) -> None:
    """Fail at once if the stack's ports are taken or its Redis does not answer, naming the setting to change.

    Otherwise a second stack's health checks would reach the first one's API and say "up".
    """
    from outdial.cli.errors import redis_answers
    from outdial.errors import ConfigError

    ports = [
        (settings.api_host, settings.api_port, "OUTDIAL_API_PORT"),
        (settings.simulator_host, settings.simulator_port, "OUTDIAL_SIMULATOR_PORT"),
    ]
    for host, port, setting in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind((host, port))
            except OSError:
                raise ConfigError(
                    f"port {port} on {host} is taken (another `outdial up`?): stop it, or set {setting} to a free port"
                ) from None
    if settings.redis_url:
        redis_answers(settings.redis_url, "outdial")


def up() -> None:
    """Run the whole stack on this machine until Ctrl-C; with no settings, on the embedded default."""
    from outdial.logs import setup_logging
    from outdial.settings import get_settings
    from outdial.stack import PartGaveUp, Stack

    setup_logging()  # the supervisor's lines (a part exited, restarted) go to stderr
    settings = get_settings()
    refuse_to_share(settings)
    stack = Stack(settings, settings.data_dir / "logs")
    try:
        stack.start()
        s = stack.settings
        console().print(
            f"outdial is up: API http://{s.api_host}:{s.api_port}/docs, "
            f"simulator http://{s.simulator_host}:{s.simulator_port}, logs in {stack.log_dir}"
        )
        console().print("Ctrl-C stops everything; a part that exits is started again.")
        while True:
            stack.supervise()
            time.sleep(1)
    except KeyboardInterrupt:
        console().print("stopping ...")
    except PartGaveUp as exc:
        console().print(f"[red]{exc}; stopping everything[/red]")
        raise typer.Exit(1) from exc
    finally:
        stack.stop()


# Shipped inside the package (in a checkout, a link to examples/leads.csv), so the demo
# runs after a plain `pip install` too.
DEMO_LEADS = Path(__file__).resolve().parent.parent / "demo" / "leads.csv"
DEMO_OUTCOMES = {"completed": 0.5, "no_answer": 0.25, "busy": 0.15, "voicemail": 0.1}
# The demo campaign's own pace: 10 calls a second, within the simulated account's 50.
DEMO_CALLS_PER_MINUTE = 600


def demo(
    leads: Path = typer.Option(
        DEMO_LEADS, "--leads", help="A CSV of leads with a phone column (default: the shipped examples/leads.csv)."
    ),
    timeout: float = typer.Option(170.0, "--timeout", help="Seconds to wait for every job to end."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run a campaign over the simulated CallKaro, with retries, until every job has ended."""
    import os

    import httpx

    from outdial.services.campaigns import add_leads, create_campaign
    from outdial.services.timing.spec import TimingFields
    from outdial.settings import get_settings, reset_settings
    from outdial.stack import Stack, dispatch_results, hand_back_share
    from outdial.store import campaigns as campaign_store
    from outdial.store.db import get_engine

    if not os.environ.get("OUTDIAL_DATABASE_URL"):
        demo_dir = get_settings().data_dir / "demo"
        shutil.rmtree(demo_dir, ignore_errors=True)  # every demo run starts from an empty database
        os.environ["OUTDIAL_DATA_DIR"] = str(demo_dir)
        reset_settings()
    settings = get_settings()
    refuse_to_share(settings)
    stack = Stack(settings, settings.data_dir / "logs")
    try:
        stack.start()
        settings = stack.settings
        sim_url = f"http://{settings.simulator_host}:{settings.simulator_port}"
        httpx.post(f"{sim_url}/_sim/config/callkaro", json={"outcome_mix": DEMO_OUTCOMES, "outcome_delay_s": 1.0})
        engine = get_engine()
        now = datetime.now(UTC)
        # Simulated calls ring nobody, so the demo turns callee hours off to run at any hour.
        timing = TimingFields(number_of_retries=2, gap_between_retries=[0, 1], callee_hours=None)
        # Paced per campaign as operators pace theirs: the scheduler sends at that rate, so the
        # workers' gate seldom hands a job back (the summary counts those that were).
        campaign_id = create_campaign(
            engine, settings, "demo", "sim-callkaro", timing, now, calls_per_minute=DEMO_CALLS_PER_MINUTE
        )
        with engine.connect() as conn:
            campaign = campaign_store.by_id(conn, campaign_id)
        assert campaign is not None
        rows = _read_leads(leads)
        added = add_leads(engine, settings, campaign, rows, now)
        console().print(
            f"campaign 'demo': {added.accepted} leads from {leads}, {DEMO_CALLS_PER_MINUTE} calls/min, "
            "2 retries on no answer, busy, failure"
        )
        summary = _watch(engine, campaign_id, timeout, stack)
        sim = httpx.get(f"{sim_url}/_sim/stats").json()["providers"]["callkaro"]
        summary["simulator"] = {"requests": sim["requests"], "accepted": sim["accepted"]}
        summary["max_requests_per_attempt"] = _max_requests_per_attempt(engine, campaign_id, sim)
    finally:
        stack.stop()
    results = dispatch_results(stack.log_dir)
    summary["dispatch_results"] = dict(results.most_common())
    summary["hand_back_share"] = hand_back_share(results)
    _report(summary, json_out)
    if summary["not_terminal"]:
        raise typer.Exit(1)


def _read_leads(path: Path) -> list[Any]:
    from outdial.services.campaigns import LeadIn

    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        return [
            LeadIn(phone=row.pop("phone"), variables=dict(row), source_row=i) for i, row in enumerate(reader, start=2)
        ]


def _watch(engine: Any, campaign_id: int, timeout: float, stack: Stack) -> dict[str, Any]:
    from rich.live import Live

    from outdial.models import TERMINAL_STATES
    from outdial.store import jobs as job_store

    started = time.monotonic()
    counts: dict[str, int] = {}
    with Live(console=console(), refresh_per_second=2) as live:
        while time.monotonic() - started < timeout:
            stack.check_alive()
            with engine.connect() as conn:
                counts = job_store.counts_by_state(conn, campaign_id)
            live.update(_progress_table(counts, time.monotonic() - started))
            if counts and all(state in TERMINAL_STATES for state in counts):
                break
            time.sleep(0.5)
    with engine.connect() as conn:
        outcomes = job_store.outcome_counts(conn, campaign_id)
    return {
        "jobs": sum(counts.values()),
        "states": counts,
        "outcomes": outcomes,
        "not_terminal": sum(n for s, n in counts.items() if s not in TERMINAL_STATES),
        "seconds": round(time.monotonic() - started, 1),
    }


def _progress_table(counts: dict[str, int], elapsed: float) -> Table:
    from rich.table import Table

    table = Table(title=f"campaign 'demo' - {elapsed:.0f} s")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state, n in sorted(counts.items()):
        table.add_row(state, str(n))
    return table


def _max_requests_per_attempt(engine: Any, campaign_id: int, sim: dict[str, Any]) -> int:
    """From the simulator's side: calls it accepted per number, against attempts recorded per number."""
    from outdial.store import jobs as job_store

    with engine.connect() as conn:
        recorded = job_store.accepted_attempts_by_number(conn, campaign_id)
    accepted = Counter(sim["accepted_by_number"])
    # Every accepted call matches one recorded attempt: more on the simulator's side means a double dial.
    return max((accepted[n] - recorded.get(n, 0) + 1 for n in accepted), default=0)


def _report(summary: dict[str, Any], json_out: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    if json_out:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"demo finished in {summary['seconds']} s: {summary['jobs']} jobs")
    table.add_column("outcome of the last attempt")
    table.add_column("jobs", justify="right")
    for outcome, n in sorted(summary["outcomes"].items()):
        table.add_row(outcome, str(n))
    Console().print(table)
    typer.echo(f"jobs by state: {json.dumps(summary['states'])}")
    typer.echo(
        f"calls the simulator accepted: {summary['simulator']['accepted']}; "
        f"most requests for one attempt: {summary['max_requests_per_attempt']}"
    )
    typer.echo(
        f"dispatch tasks: {sum(summary['dispatch_results'].values())}, "
        f"{summary['hand_back_share']:.1%} handed back by pacing; {json.dumps(summary['dispatch_results'])}"
    )
    if summary["not_terminal"]:
        typer.echo(f"{summary['not_terminal']} jobs had not ended in time", err=True)
