"""``outdial jobs list|retry|cancel``: a campaign's jobs, one by one, for an operator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from outdial import errors
from outdial.cli.campaigns import open_engine

if TYPE_CHECKING:
    from outdial.services.jobs import JobsChanged

# Commands import their libraries themselves, so `outdial --help` stays fast.
jobs_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="A campaign's jobs: list them, retry or cancel some."
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_line(job: Any, latest: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job.id,
        "lead_id": job.lead_id,
        "to_number": job.to_number,
        "round": job.round,
        "state": job.state,
        "outcome": job.last_outcome,
        "attempts": job.attempts_used,
        "next_due_at": _iso(job.next_due_at),
        "reason": job.reason,
        **latest,
    }


@jobs_app.command("list")
def list_jobs(
    campaign: str = typer.Option(..., "--campaign", "-c", help="The campaign's name."),
    state: list[str] = typer.Option([], "--state", "-s", help="Only these states; repeat or comma list."),
    outcome: list[str] = typer.Option([], "--outcome", "-o", help="Only these last outcomes; repeat or comma list."),
    after: int = typer.Option(0, "--after", min=0, help="Start after this job id (the 'next page' hint)."),
    limit: int = typer.Option(50, "--limit", min=1, help="Jobs per page (at most 500)."),
    json_out: bool = typer.Option(False, "--json", help="Print the page as JSON."),
) -> None:
    """A page of the campaign's jobs in id order, with each one's newest provider status."""
    from rich.console import Console
    from rich.table import Table

    from outdial.services import jobs as job_service
    from outdial.services.campaigns import find

    states = job_service.parse_states(state, option="--state")
    outcomes = job_service.parse_outcomes(outcome, option="--outcome")
    engine = open_engine()
    with engine.connect() as conn:
        found = find(conn, campaign)
        page = job_service.list_jobs(conn, found, states=states, outcomes=outcomes, after_id=after, limit=limit)
    lines = [job_line(j, job_service.attempt_view(page.latest.get(int(j.id)))) for j in page.jobs]
    if json_out:
        typer.echo(json.dumps({"jobs": lines, "next_after": page.next_after}))
        return
    table = Table("job", "lead", "number", "state", "outcome", "att", "next due (UTC)", "reason", "provider status")
    for line in lines:
        table.add_row(
            str(line["id"]),
            str(line["lead_id"] or ""),
            line["to_number"],
            line["state"],
            line["outcome"] or "",
            str(line["attempts"]),
            (line["next_due_at"] or "")[:16],
            line["reason"] or "",
            line["raw_status"] or "",
        )
    console = Console()
    console.print(table)
    if page.next_after is not None:
        console.print(f"more: outdial jobs list --campaign {campaign!r} --after {page.next_after} ...")


def _selection(ids: list[int], campaign: str | None, state: list[str]) -> None:
    if ids and campaign:
        raise errors.InputError("give job ids, or --campaign with --state, not both", field="--campaign")
    if not ids and not campaign:
        raise errors.InputError("give job ids, or --campaign NAME --state STATE", field="IDS")
    if state and not campaign:
        raise errors.InputError("--state selects a campaign's jobs: give --campaign too", field="--state")


def _report(verb: str, changed: JobsChanged, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps({verb: changed.done, "refused": {str(k): v for k, v in changed.refused.items()}}))
    else:
        done = f": {', '.join(map(str, changed.done))}" if changed.done else ""
        typer.echo(f"{len(changed.done)} jobs {verb}{done}")
    if changed.refused:
        # Not all that was asked was done: one line per refusal, and exit 1 (the CLI's translation).
        raise errors.Conflict(f"{len(changed.refused)} refused: " + "; ".join(changed.refused.values()))


@jobs_app.command("retry")
def retry(
    ids: list[int] = typer.Argument(None, help="Job ids.", show_default=False),
    campaign: str | None = typer.Option(None, "--campaign", "-c", help="Every job of this campaign in --state."),
    state: list[str] = typer.Option([], "--state", "-s", help="With --campaign: these states (default unknown)."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Dial ended jobs once more (unknown, exhausted, expired, rejected), due now or when their window opens.

    An unknown call may have rung already: retrying is your decision, and the job records that you made it.
    """

    from outdial.services import jobs as job_service
    from outdial.settings import get_settings

    ids = ids or []
    _selection(ids, campaign, state)
    engine, settings, now, who = open_engine(), get_settings(), datetime.now(UTC), job_service.cli_actor()
    if campaign:
        changed = job_service.retry_campaign(engine, settings, campaign, state, who, now, option="--state")
    else:
        changed = job_service.retry(engine, settings, ids, who, now)
    _report("retried", changed, json_out)


@jobs_app.command("cancel")
def cancel(
    ids: list[int] = typer.Argument(None, help="Job ids.", show_default=False),
    campaign: str | None = typer.Option(None, "--campaign", "-c", help="Every job of this campaign in --state."),
    state: list[str] = typer.Option([], "--state", "-s", help="With --campaign: scheduled, queued or unknown."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Cancel jobs no worker holds (scheduled, queued, unknown); calls in progress finish."""

    from outdial.services import jobs as job_service

    ids = ids or []
    _selection(ids, campaign, state)
    engine, now, who = open_engine(), datetime.now(UTC), job_service.cli_actor()
    if campaign:
        changed = job_service.cancel_campaign_jobs(engine, campaign, state, who, now, option="--state")
    else:
        changed = job_service.cancel(engine, ids, who, now)
    _report("cancelled", changed, json_out)
