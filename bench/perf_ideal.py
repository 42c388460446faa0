"""The "ideal task": the least work one dispatch's guarantees need, as a baseline for outdial's own.

One transaction moves the job ``queued -> dialing`` conditionally and inserts
its attempt; the CallKaro request goes to the simulator; one transaction
records the answer and moves the job ``dialing -> accepted``. Raw SQL through
SQLAlchemy Core on psycopg 3 (outdial's own engine and pool), the same httpx
client limits as the worker. Nothing else: no campaign, window, pacing,
metrics or logs. ``bench.perf_app`` registers it on outdial's worker app, so
it runs on the same worker, pool, broker, database and simulator.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import cache

import httpx
from sqlalchemy import Engine, text

from outdial.services.providers.accounts import Account, load_accounts
from outdial.settings import get_settings
from outdial.store.db import get_engine

IDEAL_TASK = "bench.ideal"
ACCOUNT = "sim-callkaro"

BEGIN = text(
    """
    WITH moved AS (
        UPDATE jobs SET state = 'dialing', attempts_used = attempts_used + 1, state_changed_at = :now
        WHERE id = :id AND state = 'queued'
        RETURNING id, attempts_used, account, to_number, variables, next_due_at
    ), attempt AS (
        INSERT INTO attempts (job_id, number, seq, account, provider, due_at, requested_at)
        SELECT id, attempts_used, attempts_used, account, 'callkaro', next_due_at, :now FROM moved
        RETURNING id, job_id
    )
    SELECT attempt.id, moved.to_number, moved.variables FROM attempt JOIN moved ON moved.id = attempt.job_id
    """
)
RECORD = text(
    """
    UPDATE attempts SET responded_at = :now, latency_ms = :ms, http_status = :status,
                        provider_call_id = :call, result = 'accepted'
    WHERE id = :attempt
    """
)
ACCEPT = text(
    """
    UPDATE jobs SET state = 'accepted', provider_call_id = :call, transport_retries = 0, state_changed_at = :now
    WHERE id = :id AND state = 'dialing'
    """
)


@cache
def _parts() -> tuple[Engine, httpx.Client, Account]:
    settings = get_settings()
    client = httpx.Client(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return get_engine(), client, load_accounts(settings.accounts_file)[ACCOUNT]


def ideal_dispatch(job_id: int) -> str:
    engine, client, account = _parts()
    with engine.begin() as conn:
        row = conn.execute(BEGIN, {"id": job_id, "now": datetime.now(UTC)}).first()
    if row is None:
        return "skipped"
    attempt_id, to_number, variables = row
    body = {"to_number": to_number, "agent_id": str(account.options["agent_id"]), "metadata": variables or {}}
    started = time.perf_counter()
    response = client.post(
        account.url("/call/outbound"),
        content=json.dumps(body).encode(),
        headers={"X-API-KEY": account.secret("api_key"), "Content-Type": "application/json"},
        timeout=httpx.Timeout(10.0, connect=5.0),
    )
    latency = (time.perf_counter() - started) * 1000
    answer = response.json()
    call_id = str(answer.get("call_sid") or answer.get("call_id"))
    with engine.begin() as conn:
        now = datetime.now(UTC)
        values = {"now": now, "ms": latency, "status": response.status_code, "call": call_id, "attempt": attempt_id}
        conn.execute(RECORD, values)
        conn.execute(ACCEPT, {"id": job_id, "call": call_id, "now": now})
    return "accepted"
