"""A webhook and the worker recording the same call id never miss each other: on PostgreSQL both
take the call's lock, so the second waits for the first to commit (SQLite has one writer)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from outdial.store import events as event_store


def test_a_second_transaction_waits_for_the_calls_lock(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers itself")
    with engine.connect() as first, first.begin():
        event_store.lock_call(first, "callkaro", "call-1")
        with engine.connect() as second, second.begin():
            second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            event_store.lock_call(second, "callkaro", "call-2")  # another call: not held back
        with engine.connect() as second, second.begin():
            second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                event_store.lock_call(second, "callkaro", "call-1")
    with engine.connect() as second, second.begin():  # released at commit
        event_store.lock_call(second, "callkaro", "call-1")
