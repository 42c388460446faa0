"""``outdial campaign create|list|show|pause|resume|cancel``: campaigns, with their SPEC 5 timing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from outdial import errors

if TYPE_CHECKING:
    from pydantic import ValidationError
    from sqlalchemy import Engine

    from outdial.services.campaigns import CampaignChange

# Commands import their libraries themselves, so `outdial --help` stays fast.
campaign_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Campaigns: create, list, show, pause, resume and cancel them."
)

# The command's option for each timing field, so an error names what the user typed.
OPTION_OF = {
    "timezone": "--timezone",
    "min_trigger_time": "--min-trigger-time",
    "max_trigger_time": "--max-trigger-time",
    "days_of_week": "--days",
    "carry_over": "--carry-over",
    "number_of_retries": "--retries",
    "gap_between_retries": "--gap",
    "priority": "--priority",
    "callee_hours": "--callee-hours",
    "name": "NAME",
    "account": "--account",
    "retry_on": "--retry-on",
    "cron": "--cron",
    "calls_per_minute": "--calls-per-minute",
}


def open_engine() -> Engine:
    """The configured database; the embedded SQLite file is migrated on first use."""
    from outdial.store.db import get_engine, migrations_current, upgrade

    engine = get_engine()
    if engine.dialect.name == "sqlite" and not migrations_current(engine):
        upgrade()
    return engine


def split_list(values: list[str]) -> list[str]:
    """Repeatable options that also take comma lists: ``--gap 10 --gap 30`` or ``--gap 10,30``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def parse_gaps(values: list[str]) -> int | list[int] | None:
    items = split_list(values)
    if not items:
        return None
    gaps: list[int] = []
    for item in items:
        try:
            gaps.append(int(item))
        except ValueError:
            raise errors.InputError(f"{item!r} is not a whole number of minutes", field="--gap") from None
    return gaps[0] if len(gaps) == 1 else gaps


def body_error(exc: ValidationError) -> errors.InputError:
    """pydantic's first complaint about the command's input, naming the option the user typed."""
    found = exc.errors(include_input=False)
    err = next((e for e in found if not str(e["type"]).endswith("_type")), found[0])
    name = str(err["loc"][0]) if err["loc"] else "timing"
    return errors.InputError(str(err["msg"]).removeprefix("Value error, "), field=OPTION_OF.get(name, name))


def json_text(value: Any) -> str:
    """JSON for ``--json``: a campaign's view keeps its times as datetimes, written here in ISO 8601."""

    def iso(instant: Any) -> str:
        if isinstance(instant, datetime):
            return instant.isoformat()
        raise TypeError(f"{type(instant).__name__} is not JSON")

    return json.dumps(value, default=iso)


@campaign_app.command("create")
def create(
    name: str = typer.Argument(..., help="A name, unique among campaigns."),
    account: str = typer.Option(..., "--account", help="A provider account from the accounts file."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone, or 'callee' (from each number)."),
    min_trigger_time: str | None = typer.Option(None, "--min-trigger-time", help="Daily window start, HH:MM."),
    max_trigger_time: str | None = typer.Option(None, "--max-trigger-time", help="Daily window end, HH:MM."),
    days: str | None = typer.Option(None, "--days", help="Allowed days: mon,tue,... or 1-7 (1 = Monday)."),
    carry_over: bool | None = typer.Option(
        None, "--carry-over/--no-carry-over", help="Carry retries over to the next window."
    ),
    retries: int | None = typer.Option(None, "--retries", help="Retries after the first attempt (0-10)."),
    gap: list[str] = typer.Option([], "--gap", help="Minutes between retries; repeat or comma list."),
    priority: int | None = typer.Option(None, "--priority", help="-100..100, higher goes first."),
    callee_hours: str | None = typer.Option(
        None, "--callee-hours", help="HH:MM-HH:MM in the callee's zone, or 'off' (default from settings)."
    ),
    retry_on: list[str] = typer.Option([], "--retry-on", help="Outcomes that use a retry; repeat or comma list."),
    cron: str | None = typer.Option(None, "--cron", help="Start a new round of every lead when this fires."),
    calls_per_minute: int | None = typer.Option(None, "--calls-per-minute", min=1, help="Pacing for the campaign."),
    paused: bool = typer.Option(
        False, "--paused", help="Create it paused: import and check leads, then `outdial campaign resume`."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the campaign as JSON."),
) -> None:
    """Create a campaign on an account, with the timing its leads inherit (SPEC 5)."""
    from pydantic import ValidationError

    from outdial.models import CampaignState
    from outdial.services import campaigns
    from outdial.services.jobs import cli_actor
    from outdial.services.providers.accounts import load_accounts
    from outdial.settings import get_settings

    settings = get_settings()
    given: dict[str, Any] = {
        "name": name,
        "account": account,
        "timezone": timezone,
        "min_trigger_time": min_trigger_time,
        "max_trigger_time": max_trigger_time,
        "days_of_week": days,
        "carry_over": carry_over,
        "number_of_retries": retries,
        "gap_between_retries": parse_gaps(gap),
        "priority": priority,
        "retry_on": split_list(retry_on) or None,
        "cron": cron,
        "calls_per_minute": calls_per_minute,
        "state": CampaignState.PAUSED if paused else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if callee_hours is not None:
        given["callee_hours"] = None if callee_hours.strip().lower() == "off" else callee_hours
    try:
        body = campaigns.CampaignBody.model_validate(given)
    except ValidationError as exc:
        raise body_error(exc) from None
    engine = open_engine()
    try:
        row = campaigns.create(
            engine, settings, load_accounts(settings.accounts_file), body, datetime.now(UTC), cli_actor()
        )
    except errors.InputError as exc:
        # The service names its field; the user typed an option.
        raise errors.InputError(exc.reason, field=OPTION_OF.get(exc.field or "", exc.field)) from None
    if json_out:
        typer.echo(json_text(campaigns.campaign_view(row)))
    else:
        paused_note = ", paused (outdial campaign resume NAME to dial)" if paused else ""
        typer.echo(f"campaign {name!r} created (id {row.id}) on account {account}{paused_note}")


@campaign_app.command("list")
def list_campaigns(json_out: bool = typer.Option(False, "--json", help="Print the campaigns as JSON.")) -> None:
    """Every campaign, with its state, round and number of leads."""
    from rich.console import Console
    from rich.table import Table

    from outdial.services.campaigns import campaign_view
    from outdial.store import campaigns as campaign_store

    engine = open_engine()
    with engine.connect() as conn:
        rows = campaign_store.all_campaigns(conn)
        counts = campaign_store.lead_counts(conn)
    if json_out:
        typer.echo(json_text([{**campaign_view(r), "leads": counts.get(r.id, 0)} for r in rows]))
        return
    table = Table("id", "name", "account", "state", "round", "leads", "timing", "cron")
    for r in rows:
        timing = json.dumps(r.timing, sort_keys=True, separators=(",", ":"))
        table.add_row(
            str(r.id), r.name, r.account, r.state, str(r.round), str(counts.get(r.id, 0)), timing, r.cron or ""
        )
    Console().print(table)


def _report_change(change: CampaignChange, json_out: bool) -> None:
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "campaign": change.campaign,
                    "state": change.state.value,
                    "changed": change.changed,
                    "cancelled_jobs": change.cancelled_jobs,
                }
            )
        )
        return
    done = "now" if change.changed else "already"
    extra = f"; {change.cancelled_jobs} jobs cancelled" if change.cancelled_jobs else ""
    typer.echo(f"campaign {change.campaign!r} is {done} {change.state.value}{extra}")


@campaign_app.command("pause")
def pause(
    name: str = typer.Argument(..., help="The campaign's name."),
    reason: str | None = typer.Option(None, "--reason", help="Shown with its status, after who paused it."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Stop dialling the campaign's jobs; calls already placed finish."""
    from outdial.services import campaigns
    from outdial.services.jobs import cli_actor

    said = f"paused by {cli_actor()}" + (f": {reason}" if reason else "")
    _report_change(campaigns.pause(open_engine(), name, datetime.now(UTC), said), json_out)


@campaign_app.command("resume")
def resume(
    name: str = typer.Argument(..., help="The campaign's name."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Dial again; a campaign its circuit breaker paused has the breaker closed too."""
    from outdial.services import campaigns

    _report_change(campaigns.resume(open_engine(), name, datetime.now(UTC)), json_out)


@campaign_app.command("cancel")
def cancel(
    name: str = typer.Argument(..., help="The campaign's name."),
    reason: str | None = typer.Option(None, "--reason", help="Kept with the campaign, after who cancelled it."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """End the campaign: its jobs not yet handed to a worker are cancelled; calls in progress finish."""
    from outdial.services import campaigns
    from outdial.services.jobs import cli_actor

    said = f"cancelled by {cli_actor()}" + (f": {reason}" if reason else "")
    _report_change(campaigns.cancel(open_engine(), name, datetime.now(UTC), said), json_out)


@campaign_app.command("show")
def show(
    name: str = typer.Argument(..., help="The campaign's name."),
    json_out: bool = typer.Option(False, "--json", help="Print it as JSON."),
) -> None:
    """One campaign: its settings, jobs per state, and why it is (not) dialling, with its next due time."""
    from zoneinfo import ZoneInfo

    from rich.console import Console
    from rich.table import Table

    from outdial.services import campaigns
    from outdial.services.waiting import explain, when
    from outdial.settings import get_settings
    from outdial.store import campaigns as campaign_store
    from outdial.store import jobs as job_store

    engine = open_engine()
    settings = get_settings()
    with engine.connect() as conn:
        row = campaigns.find(conn, name)
        counts = job_store.counts_by_state(conn, row.id)
        leads = campaign_store.lead_counts(conn).get(row.id, 0)
        why = explain(conn, row, datetime.now(UTC), settings)
    if json_out:
        shown = {**campaigns.campaign_view(row), "leads": leads, "counts": counts, "why": why.as_json()}
        typer.echo(json_text(shown))
        return
    facts = Table.grid(padding=(0, 2))
    facts.add_row("campaign", f"{row.name} (id {row.id})")
    facts.add_row("account", row.account)
    facts.add_row("state", row.state + (f" ({row.pause_reason})" if row.pause_reason else ""))
    facts.add_row("round", str(row.round) + (f", cron {row.cron}" if row.cron else ""))
    facts.add_row("leads", str(leads))
    facts.add_row("jobs", ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none")
    facts.add_row("timing", json.dumps(row.timing, sort_keys=True))
    facts.add_row("now", ("dialling: " if why.dialling else "not dialling: ") + why.text)
    if why.next_due is not None:
        facts.add_row("next due", when(why.next_due, ZoneInfo(why.zone)))
    else:
        facts.add_row("next due", "nothing scheduled")
    Console().print(facts)
