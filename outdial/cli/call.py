"""``outdial call``: place one call now through a configured account, to check credentials and configuration."""

from __future__ import annotations

import json
from typing import Any

import typer


def parse_vars(pairs: list[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--var")
        variables[key] = value
    return variables


def call(
    account: str = typer.Option(..., "--account", help="An account from the accounts file."),
    to: str = typer.Option(..., "--to", help="The number to call, E.164 (+14155550123)."),
    var: list[str] = typer.Option([], "--var", help="A lead variable, key=value; repeatable."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Place one call now, outside any campaign, and print what the provider answered."""
    import httpx

    from outdial.errors import ConfigError
    from outdial.services.providers import adapter_for
    from outdial.services.providers.accounts import AccountError, load_accounts
    from outdial.services.providers.base import CallRequest, Verdict
    from outdial.services.providers.transport import Timeouts, send
    from outdial.services.timing.spec import parse_number
    from outdial.settings import get_settings

    settings = get_settings()
    try:
        parse_number(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from None
    try:
        accounts = load_accounts(settings.accounts_file)
        if account not in accounts:
            raise AccountError(f"no account named {account!r} in {settings.accounts_file}; known: {sorted(accounts)}")
        chosen = accounts[account]
        adapter = adapter_for(chosen.provider)
        request = adapter.build_request(
            chosen,
            CallRequest(
                job_id=0,
                attempt=1,
                to_number=to,
                variables=parse_vars(var),
                callback_url=f"{settings.public_url.rstrip('/')}/webhooks/{account}",
            ),
        )
    except KeyError as exc:
        raise ConfigError(str(exc)) from None
    with httpx.Client() as client:
        sent = send(
            client, adapter, request, Timeouts(settings.provider_connect_timeout_s, settings.provider_read_timeout_s)
        )
    result = sent.result
    out: dict[str, Any] = {
        "account": account,
        "provider": chosen.provider,
        "accepted": result.verdict == Verdict.ACCEPTED,
        "verdict": str(result.verdict),
        "provider_call_id": result.provider_call_id,
        "http_status": result.http_status,
        "error_class": result.error_code,
        "message": result.message,
        "latency_ms": round(sent.latency_ms, 1),
    }
    if json_out:
        typer.echo(json.dumps(out))
    else:
        for key, value in out.items():
            typer.echo(f"{key:>16}: {value}")
    if result.verdict != Verdict.ACCEPTED:
        raise typer.Exit(1)
