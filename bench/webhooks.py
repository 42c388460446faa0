"""Webhooks stay fast while the API is flooded: p50/p99 of ``POST /webhooks/{account}`` (and
``/healthz``) during a burst of concurrent ``POST /calls``, on loopback.

Providers give up on a webhook after a few seconds (CallKaro waits 5 s), so the promise is
webhook p99 < 2 s however many calls arrive at once. The run starts ``outdial api`` on a
private PostgreSQL (or a fresh database on the shared one), fires ``--calls`` POST /calls at
``--concurrency`` from a separate process (so the client's own event loop does not colour the
probe), and meanwhile sends ``--webhook-rate`` webhooks per second, each timed from send to
answer. Everything is bounded: the burst, the probe's duration, the time-outs.

    python -m bench webhooks                       # 2000 concurrent POST /calls
    python -m bench webhooks --quick               # 500: for a shared machine
    python -m bench webhooks --calls 2000 --concurrency 2000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.services import PrivatePostgres, free_port, wait_port

SECRET = "bench-webhook-secret"
ACCOUNTS = """
[accounts.ck]
provider = "callkaro"
base_url = "http://127.0.0.1:9"
credentials = { api_key = "OUTDIAL_BENCH_CK_KEY" }
webhook_secret = "OUTDIAL_BENCH_WEBHOOK_SECRET"
options = { agent_id = "bench-agent" }
"""
CALL = {"to_number": "+12125551234", "account": "ck", "metadata": {"name": "Asha"}}
GOAL_P99_S = 2.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _flood(port: int, key: str, calls: int, concurrency: int, out: Any) -> None:
    """In its own process: ``calls`` POST /calls, ``concurrency`` at once; sends back (statuses, seconds)."""

    async def run() -> tuple[dict[str, int], float]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = httpx.Timeout(120.0, connect=60.0)
        statuses: dict[str, int] = {}
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, headers={"X-API-Key": key}) as client:

            async def one(n: int) -> None:
                async with gate:
                    try:
                        r = await client.post(f"http://127.0.0.1:{port}/calls", json={**CALL, "metadata": {"n": n}})
                        name = str(r.status_code)
                    except httpx.HTTPError as exc:
                        name = type(exc).__name__
                    statuses[name] = statuses.get(name, 0) + 1

            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(calls)))
            return statuses, time.monotonic() - started

    out.send(asyncio.run(run()))


async def _probe(port: int, path: str, body: bytes | None, rate: float, stop: asyncio.Event) -> list[float]:
    """Send one request every 1/rate s until ``stop``; each one's latency (s)."""
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:

        async def one(n: int) -> None:
            nonlocal failures
            started = time.monotonic()
            try:
                if body is None:
                    r = await client.get(f"http://127.0.0.1:{port}{path}")
                else:
                    payload = body.replace(b"CALLID", f"probe-{n}-{uuid.uuid4().hex[:6]}".encode())
                    r = await client.post(
                        f"http://127.0.0.1:{port}{path}", content=payload, headers={"Authorization": f"Bearer {SECRET}"}
                    )
                r.raise_for_status()
                latencies.append(time.monotonic() - started)
            except httpx.HTTPError:
                failures += 1
                latencies.append(time.monotonic() - started)

        tasks = []
        n = 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(one(n)))
            n += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    if failures:
        print(f"  {path}: {failures} failed", file=sys.stderr)
    return latencies


def _database(workdir: Path) -> tuple[str, PrivatePostgres | None]:
    if PrivatePostgres.available():
        pg = PrivatePostgres(free_port(18770), workdir / "pg")
        pg.start()
        return pg.url, pg
    admin_url = os.environ.get("OUTDIAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"outdial_bench_hooks_{uuid.uuid4().hex[:8]}"
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin_url.rsplit("/", 1)[0] + f"/{name}", None


def run(calls: int, concurrency: int, webhook_rate: float, health_rate: float) -> dict[str, Any]:
    from outdial.api.auth import create_key
    from outdial.store.db import make_engine, upgrade

    workdir = Path(tempfile.mkdtemp(prefix="outdial-bench-hooks-"))
    workdir.chmod(0o755)  # the private cluster runs as the postgres user
    database_url, pg = _database(workdir)
    api: subprocess.Popen[bytes] | None = None
    try:
        upgrade(database_url)
        engine = make_engine(database_url, pool_size=1)
        key = create_key(engine, "bench", datetime.now(UTC))
        engine.dispose()
        (workdir / "accounts.toml").write_text(ACCOUNTS)
        port = free_port(18771)
        env = {
            **os.environ,
            "OUTDIAL_DATABASE_URL": database_url,
            "OUTDIAL_ACCOUNTS_FILE": str(workdir / "accounts.toml"),
            "OUTDIAL_DATA_DIR": str(workdir / "var"),
            "OUTDIAL_BENCH_CK_KEY": "unused",
            "OUTDIAL_BENCH_WEBHOOK_SECRET": SECRET,
        }
        log = (workdir / "api.log").open("wb")
        api = subprocess.Popen(
            [sys.executable, "-m", "outdial", "api", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        wait_port(port, 60)
        hook = json.dumps(
            {"event": "call_ended", "data": {"callSid": "CALLID", "hangup_reason": "CLIENT_INITIATED"}}
        ).encode()

        async def measure() -> tuple[list[float], list[float], tuple[dict[str, int], float]]:
            stop = asyncio.Event()
            receiving, sending = multiprocessing.Pipe(duplex=False)
            flood = multiprocessing.Process(target=_flood, args=(port, key, calls, concurrency, sending))
            hooks = asyncio.create_task(_probe(port, "/webhooks/ck", hook, webhook_rate, stop))
            health = asyncio.create_task(_probe(port, "/healthz", None, health_rate, stop))
            await asyncio.sleep(0.5)  # the probes are running before the burst lands
            flood.start()
            result = await asyncio.to_thread(receiving.recv)
            flood.join(30)
            stop.set()
            return await hooks, await health, result

        hooks, health, (statuses, seconds) = asyncio.run(measure())
    finally:
        if api is not None:
            api.terminate()
            api.wait(30)
        if pg is not None:
            pg.stop()
    return {
        "calls": calls,
        "concurrency": concurrency,
        "calls_seconds": round(seconds, 2),
        "calls_statuses": statuses,
        "webhooks": len(hooks),
        "webhook_p50_s": round(percentile(hooks, 0.5), 3),
        "webhook_p99_s": round(percentile(hooks, 0.99), 3),
        "webhook_max_s": round(max(hooks, default=float("nan")), 3),
        "webhook_mean_s": round(statistics.fmean(hooks), 3) if hooks else None,
        "healthz_p50_s": round(percentile(health, 0.5), 3),
        "healthz_p99_s": round(percentile(health, 0.99), 3),
        "goal_webhook_p99_s": GOAL_P99_S,
        "ok": percentile(hooks, 0.99) < GOAL_P99_S,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="POST /calls in the burst")
    parser.add_argument("--concurrency", type=int, default=2000, help="of them in flight at once")
    parser.add_argument("--webhook-rate", type=float, default=20.0, help="webhooks per second during the burst")
    parser.add_argument("--health-rate", type=float, default=5.0, help="GET /healthz per second")
    parser.add_argument("--quick", action="store_true", help="500 calls at 500 at once")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls = args.concurrency = 500
    result = run(args.calls, min(args.concurrency, args.calls), args.webhook_rate, args.health_rate)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['calls']} POST /calls, {result['concurrency']} at once, took {result['calls_seconds']} s "
            f"({result['calls_statuses']})\n"
            f"webhooks during it: {result['webhooks']}, p50 {result['webhook_p50_s']} s, "
            f"p99 {result['webhook_p99_s']} s, max {result['webhook_max_s']} s (goal p99 < {GOAL_P99_S} s)\n"
            f"/healthz during it: p50 {result['healthz_p50_s']} s, p99 {result['healthz_p99_s']} s\n"
            f"{'OK' if result['ok'] else 'FAILED'}"
        )
    return 0 if result["ok"] else 1
