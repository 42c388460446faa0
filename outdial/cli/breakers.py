"""``outdial breaker``: see open circuit breakers and resume what they paused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

breaker_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Circuit breakers of accounts and campaigns."
)


@breaker_app.command("list")
def list_breakers(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every breaker that has opened, and whether it is open now."""
    from outdial.store import breakers as breaker_store
    from outdial.store.db import get_engine

    engine = get_engine()
    with engine.connect() as conn:
        rows = [
            {"scope": r.scope, "name": r.name, "open": r.open, "reason": r.reason, "opened_at": r.opened_at}
            for r in breaker_store.all_breakers(conn)
        ]
    if json_out:
        typer.echo(json.dumps(rows, default=str))
        return
    for row in rows:
        state = "OPEN" if row["open"] else "closed"
        typer.echo(f"{row['scope']:<9} {row['name']:<30} {state:<7} {row['reason'] or ''}")


@breaker_app.command("resume")
def resume_breaker(
    scope: str = typer.Argument(..., help="account or campaign"),
    name: str = typer.Argument(..., help="The account's name, or the campaign's name."),
) -> None:
    """Close a breaker by hand; a campaign it paused becomes active again."""
    from outdial.services.breaker import resume
    from outdial.store.db import get_engine

    if scope not in ("account", "campaign"):
        raise typer.BadParameter("must be 'account' or 'campaign'", param_hint="SCOPE")
    resume(get_engine(), scope, name, datetime.now(UTC))
    typer.echo(f"{scope} {name}: breaker closed")
