"""``outdial campaign create|list``: campaigns, with their SPEC 5 timing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from outdial.services.campaigns import CampaignError, create_campaign
from outdial.services.providers import adapter_for
from outdial.services.providers.accounts import AccountError, load_accounts
from outdial.services.timing.spec import SpecError, TimingFields, compile_rules
from outdial.settings import get_settings
from outdial.store import campaigns as campaign_store

campaign_app = typer.Typer(no_args_is_help=True, help="Campaigns: create and list them.")

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
}
# Any valid number will do to check the number-independent rules (min == max and the like).
_EXAMPLE_NUMBER = "+12125550100"


class InputError(ValueError):
    """Invalid command input; the message is the one line printed."""


def open_engine() -> Engine:
    """The configured database; the embedded SQLite file is migrated on first use."""
    from outdial.store.db import get_engine, migrations_current, upgrade

    engine = get_engine()
    if engine.dialect.name == "sqlite" and not migrations_current(engine):
        upgrade()
    return engine


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


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
            raise InputError(f"--gap: {item!r} is not a whole number of minutes") from None
    return gaps[0] if len(gaps) == 1 else gaps


def timing_fields(given: dict[str, Any]) -> TimingFields:
    """The campaign's timing layer, validated; :class:`InputError` names the option."""
    try:
        fields = TimingFields.model_validate(given)
    except ValidationError as exc:
        errors = exc.errors()
        err = next((e for e in errors if not str(e["type"]).endswith("_type")), errors[0])
        name = str(err["loc"][0]) if err["loc"] else "timing"
        raise InputError(f"{OPTION_OF.get(name, name)}: {str(err['msg']).removeprefix('Value error, ')}") from None
    try:
        compile_rules(fields, _EXAMPLE_NUMBER)
    except SpecError as exc:
        if exc.field != "to_number":
            raise InputError(f"{OPTION_OF.get(exc.field, exc.field)}: {exc.message}") from None
    return fields


def campaign_json(row: Any, leads: int | None = None) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "account": row.account,
        "state": row.state,
        "round": row.round,
        "timing": row.timing,
        "retry_on": row.retry_on,
        "cron": row.cron,
        "next_round_at": row.next_round_at.isoformat() if row.next_round_at else None,
        "calls_per_minute": row.calls_per_minute,
        "created_at": row.created_at.isoformat(),
    }
    if leads is not None:
        out["leads"] = leads
    return out


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
    json_out: bool = typer.Option(False, "--json", help="Print the campaign as JSON."),
) -> None:
    """Create a campaign on an account, with the timing its leads inherit (SPEC 5)."""
    settings = get_settings()
    try:
        given: dict[str, Any] = {
            "timezone": timezone,
            "min_trigger_time": min_trigger_time,
            "max_trigger_time": max_trigger_time,
            "days_of_week": days,
            "carry_over": carry_over,
            "number_of_retries": retries,
            "gap_between_retries": parse_gaps(gap),
            "priority": priority,
        }
        given = {k: v for k, v in given.items() if v is not None}
        if callee_hours is not None:
            given["callee_hours"] = None if callee_hours.strip().lower() == "off" else callee_hours
        fields = timing_fields(given)
        try:
            accounts = load_accounts(settings.accounts_file)
        except AccountError as exc:
            raise InputError(f"--account: {exc}") from None
        if account not in accounts:
            known = ", ".join(sorted(accounts)) or "none"
            raise InputError(f"--account: no account {account!r} in {settings.accounts_file} (known: {known})")
        if problem := adapter_for(accounts[account].provider).account_problem(accounts[account]):
            raise InputError(f"--account: {problem}")
    except InputError as exc:
        raise fail(str(exc)) from None
    engine = open_engine()
    try:
        campaign_id = create_campaign(
            engine,
            settings,
            name,
            account,
            fields,
            datetime.now(UTC),
            retry_on=split_list(retry_on) or None,
            cron=cron,
            calls_per_minute=calls_per_minute,
        )
    except CampaignError as exc:
        raise fail(str(exc)) from None
    with engine.connect() as conn:
        row = campaign_store.by_id(conn, campaign_id)
    assert row is not None
    if json_out:
        typer.echo(json.dumps(campaign_json(row)))
    else:
        typer.echo(f"campaign {name!r} created (id {campaign_id}) on account {account}")


@campaign_app.command("list")
def list_campaigns(json_out: bool = typer.Option(False, "--json", help="Print the campaigns as JSON.")) -> None:
    """Every campaign, with its state, round and number of leads."""
    engine = open_engine()
    with engine.connect() as conn:
        rows = campaign_store.all_campaigns(conn)
        counts = campaign_store.lead_counts(conn)
    if json_out:
        typer.echo(json.dumps([campaign_json(r, counts.get(r.id, 0)) for r in rows]))
        return
    table = Table("id", "name", "account", "state", "round", "leads", "timing", "cron")
    for r in rows:
        timing = json.dumps(r.timing, sort_keys=True, separators=(",", ":"))
        table.add_row(
            str(r.id), r.name, r.account, r.state, str(r.round), str(counts.get(r.id, 0)), timing, r.cron or ""
        )
    Console().print(table)
