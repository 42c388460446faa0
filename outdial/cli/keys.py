"""``outdial keys``: API keys for the HTTP API, made, listed and revoked by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="API keys for the HTTP API (stored hashed).")


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="Who or what the key is for, e.g. crm-sync."),
    scope: list[str] = typer.Option(
        [],
        "--scope",
        help="read, write or admin, and/or account:NAME, campaign:NAME (repeatable). None: full access.",
    ),
) -> None:
    """Make a key and print it: it is shown this once and stored only as a hash."""
    from outdial.api.auth import create_key
    from outdial.store.db import get_engine

    key = create_key(get_engine(), name, datetime.now(UTC), scope)
    typer.echo(key)
    typer.echo(f"API key {name!r} made; it is not shown again. Send it as: Authorization: Bearer <key>", err=True)


@keys_app.command("list")
def list_keys(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every key's name, when it was made and whether it is revoked (never the key)."""
    from outdial.store import api_keys as key_store
    from outdial.store.db import get_engine

    with get_engine().connect() as conn:
        rows = [
            {
                "name": r.name,
                "scopes": r.scopes or ["admin"],
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            }
            for r in key_store.all_keys(conn)
        ]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        status = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        typer.echo(f"{row['name']:<30} made {row['created_at']}  {status}  scopes: {','.join(row['scopes'])}")


@keys_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key's name.")) -> None:
    """Revoke a key: requests with it are refused (401) from now on."""
    from outdial.api.auth import revoke_key
    from outdial.store.db import get_engine

    revoke_key(get_engine(), name, datetime.now(UTC))
    typer.echo(f"API key {name!r} revoked")
