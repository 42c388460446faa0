"""``outdial status`` (a campaign's live progress) and ``outdial export`` (its jobs as CSV)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from outdial.errors import InputError, NotFound

if TYPE_CHECKING:
    from rich.console import RenderableType
    from sqlalchemy import Engine

    from outdial.store import AnyRow

STATE_STYLE = {
    "completed": "green",
    "exhausted": "yellow",
    "expired": "yellow",
    "rejected": "red",
    "unknown": "red",
    "cancelled": "dim",
    "suppressed": "dim",
}


def _find(engine: Engine, name: str) -> AnyRow:
    from outdial.services.campaigns import find

    with engine.connect() as conn:
        return find(conn, name)


def take_snapshot(engine: Engine, campaign_id: int) -> dict[str, Any]:
    from outdial.services.progress import snapshot
    from outdial.settings import get_settings
    from outdial.store import campaigns as campaign_store

    with engine.connect() as conn:
        campaign = campaign_store.by_id(conn, campaign_id)
        assert campaign is not None
        return snapshot(conn, campaign, datetime.now(UTC), get_settings())


def render(snap: dict[str, Any]) -> RenderableType:
    """One snapshot as a panel: progress, jobs per state, dial rate, next due time, outcomes, errors."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    from outdial.models import ACTIVE_STATES, JobState

    total, done = snap["jobs"], snap["done"]
    head = Text.assemble(
        (f"{snap['campaign']}", "bold"),
        f"  {snap['state']}",
        (f" ({snap['pause_reason']})" if snap["pause_reason"] else "", "yellow"),
        f"  account {snap['account']}  round {snap['round']}",
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(total, 1), completed=done, width=40), f"{done}/{total} done ({snap['percent_done']}%)"
    )

    states = Table(title="jobs", title_justify="left", show_header=False, box=None, padding=(0, 2))
    for state in JobState:
        n = snap["counts"].get(state.value, 0)
        if n or state in ACTIVE_STATES:
            states.add_row(Text(state.value, style=STATE_STYLE.get(state.value, "cyan")), str(n))

    rate = snap["dial_rate"]
    facts = Table.grid(padding=(0, 2))
    facts.add_row("dial rate", f"{rate['per_minute']}/min over the last {rate['window_minutes']:g} min")
    why = snap["why"]
    facts.add_row("now", Text(why["text"], style="green" if why["dialling"] else "yellow"))
    facts.add_row("next due", next_due_text(why))
    if snap["outcomes"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(snap["outcomes"].items(), key=lambda kv: -kv[1]))
        facts.add_row("outcomes", outcomes)

    parts: list[RenderableType] = [head, bar, states, facts]
    if snap["recent_errors"]:
        errors = Table(title="recent errors", title_justify="left", box=None, padding=(0, 2))
        for column in ("at", "job", "result", "http", "error"):
            errors.add_column(column)
        for e in snap["recent_errors"]:
            text = " ".join(str(x) for x in (e["error_code"], e["error"]) if x)
            errors.add_row(e["at"] or "", str(e["job_id"]), e["result"] or "", str(e["http_status"] or ""), text)
        parts.append(errors)
    return Panel(Group(*parts), title="outdial status", subtitle=snap["as_of"], expand=False)


def render_job(job: dict[str, Any]) -> RenderableType:
    """One job: its state, its attempts and its history of transitions."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        (f"job {job['id']}", "bold"),
        "  ",
        (job["state"], STATE_STYLE.get(job["state"], "cyan")),
        f"  {job['to_number']}  account {job['account']}  attempts used {job['attempts_used']}",
        (f"  ({job['reason']})" if job["reason"] else "", "yellow"),
    )
    attempts = Table(title="attempts", title_justify="left", box=None, padding=(0, 2))
    for column in ("#", "requested at", "result", "http", "call id", "outcome", "error"):
        attempts.add_column(column)
    for a in job["attempts"]:
        cells = (a["number"], a["requested_at"], a["result"], a["http_status"], a["provider_call_id"], a["outcome"])
        attempts.add_row(*(str(c) if c is not None else "" for c in (*cells, a["error"])))
    events = Table(title="history", title_justify="left", box=None, padding=(0, 2))
    for column in ("at", "from", "to", "attempt", "reason"):
        events.add_column(column)
    for e in job["events"]:
        events.add_row(
            e["at"],
            e["from"],
            Text(e["to"], style=STATE_STYLE.get(e["to"], "cyan")),
            str(e["attempt"]),
            e["reason"] or "",
        )
    return Panel(Group(head, attempts, events), title="outdial status --job", expand=False)


def show_job(job_id: int, json_out: bool) -> None:
    from rich.console import Console

    from outdial.services.progress import job_detail
    from outdial.store.db import get_engine

    with get_engine().connect() as conn:
        job = job_detail(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if json_out:
        typer.echo(json.dumps(job))
    else:
        Console().print(render_job(job))


def next_due_text(why: dict[str, Any]) -> str:
    """The next due time in the campaign's zone and in UTC."""
    if not why["next_due_at"]:
        return "nothing scheduled"
    from zoneinfo import ZoneInfo

    from outdial.services.waiting import when

    # From the zone's name, not the offset in next_due_local: "EST", not "UTC-05:00".
    return when(datetime.fromisoformat(why["next_due_at"]), ZoneInfo(why["zone"]))


def progress_line(snap: dict[str, Any]) -> str:
    """One snapshot as one line, for a log or a pipe."""
    rate = snap["dial_rate"]
    counts = " ".join(f"{state}={n}" for state, n in snap["counts"].items() if n)
    why = snap["why"]
    return (
        f"{snap['as_of'][:19]}Z {snap['campaign']} {snap['state']} "
        f"{snap['done']}/{snap['jobs']} done ({snap['percent_done']}%) "
        f"rate={rate['per_minute']}/min [{counts}] "
        f"{'dialling' if why['dialling'] else 'not dialling'}: {why['text']}"
    )


def status(
    campaign: str | None = typer.Argument(None, help="The campaign's name (not with --job)."),
    job: int | None = typer.Option(None, "--job", min=1, help="Show one job: its attempts and its history."),
    json_out: bool = typer.Option(False, "--json", help="Print one snapshot as JSON and exit."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes."),
) -> None:
    """A campaign's live progress: jobs per state, dial rate, next due time, recent errors.

    Refreshes until every job is in a final state, or Ctrl-C. When standard output is not a
    terminal (a pipe, a log file) it prints one line per refresh instead. With --job ID: that
    job's state, attempts and every transition it made.
    """
    from rich.console import Console
    from rich.live import Live

    from outdial.store.db import get_engine

    if (campaign is None) == (job is None):
        raise InputError("give a campaign name or --job ID (one of the two)")
    if job is not None:
        show_job(job, json_out)
        return
    assert campaign is not None
    engine = get_engine()
    found = _find(engine, campaign)
    snap = take_snapshot(engine, found.id)
    if json_out:
        typer.echo(json.dumps(snap))
        return
    console = Console()
    if not console.is_terminal:
        try:
            while True:
                typer.echo(progress_line(snap))
                sys.stdout.flush()
                if snap["finished"]:
                    console.print(render(snap))  # the final summary, as a terminal would have shown it
                    return
                time.sleep(interval)
                snap = take_snapshot(engine, found.id)
        except KeyboardInterrupt:
            return
    try:
        with Live(render(snap), console=console, auto_refresh=False) as live:
            while not snap["finished"]:
                time.sleep(interval)
                snap = take_snapshot(engine, found.id)
                live.update(render(snap), refresh=True)
    except KeyboardInterrupt:
        pass


def export(
    campaign: str = typer.Argument(..., help="The campaign's name."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of to standard output."),
) -> None:
    """Every job of a campaign as CSV: state, outcome, attempts, provider call ids, reason and lead variables.

    Cells a spreadsheet would run as a formula (starting = + - @) are written with a leading apostrophe.
    """
    from outdial.services import export as job_export
    from outdial.store.db import get_engine

    engine = get_engine()
    found = _find(engine, campaign)
    with engine.connect() as conn:
        if out is None:
            job_export.write_csv(conn, found.id, sys.stdout)
            return
        try:
            stream = out.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror or exc}", field="--out") from None
        with stream:
            written = job_export.write_csv(conn, found.id, stream)
    typer.echo(f"{written} jobs written to {out}", err=True)
