"""What route handlers share: the engine, settings and accounts the app was made with."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine

from outdial.services.providers.accounts import Account
from outdial.settings import Settings


@dataclass(frozen=True)
class Context:
    engine: Engine
    settings: Settings
    accounts: dict[str, Account]


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx
