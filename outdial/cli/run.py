"""Commands that run a part of the stack: ``db``, ``scheduler``, ``worker``, ``api``, ``simulator``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

import typer

db_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The database schema.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    from outdial.store.db import upgrade

    upgrade()
    typer.echo("database is at the newest migration")


def scheduler() -> None:
    """Claim due jobs and hand them to Celery, until SIGINT or SIGTERM."""
    from outdial.cli.errors import redis_answers
    from outdial.embedded import broker_url
    from outdial.logs import setup_logging
    from outdial.scheduler.process import build
    from outdial.settings import get_settings

    setup_logging()
    redis_answers(broker_url(get_settings()), "the scheduler")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop, leadership = build(get_settings())
    loop.run(lambda: stopping, leadership)


def worker(
    # Threads by default: a dispatch spends most of its time waiting on the provider, and
    # 64 threads keep 250 ms of provider latency hidden where prefork's few processes cannot
    # (docs/benchmarks.md: latency hiding 0.47 with 8 threads, about 1.0 with 64).
    concurrency: int = typer.Option(
        -1, "--concurrency", "-c", help="Threads or processes (default: 64 threads; 0: Celery's default)."
    ),
    pool: str = typer.Option("threads", "--pool", "-P", help="Celery pool: threads, prefork, solo."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    hostname: str | None = typer.Option(
        None, "--hostname", "-n", help="The worker's node name, as Celery's -n (e.g. dial1@%h); unique per host."
    ),
    queues: str | None = typer.Option(
        None, "--queues", "-Q", help="Comma-separated queues to consume, as Celery's -Q (default: OUTDIAL_QUEUE)."
    ),
) -> None:
    """A Celery worker that places calls (task events on, for Flower)."""
    from outdial.cli.errors import redis_answers
    from outdial.embedded import broker_url
    from outdial.settings import get_settings

    redis_answers(broker_url(get_settings()), "the worker")
    from outdial.worker.app import app

    if concurrency < 0:
        # 64 is for threads; a prefork worker keeps Celery's default (one process per core).
        concurrency = 64 if pool == "threads" else 0
    argv = ["worker", "-E", f"--pool={pool}", f"--loglevel={loglevel}", "-Q", queues or get_settings().queue]
    if hostname:
        argv += ["-n", hostname]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    # app.start, not app.worker_main: worker_main drops the worker's exit code, so a worker that
    # stopped on an "Unrecoverable error" exited 0 and looked like a clean shutdown to supervisors.
    code = app.start(argv)
    if code:
        raise typer.Exit(code)


def api(
    host: str = typer.Option(None, "--host", help="Address to listen on."),
    port: int = typer.Option(None, "--port", help="Port to listen on."),
) -> None:
    """The HTTP API (OpenAPI at /docs), provider webhooks included."""
    import uvicorn

    from outdial.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "outdial.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
    )


def simulator(
    host: str = typer.Option(None, "--host", help="Address to listen on."),
    port: int = typer.Option(None, "--port", help="Port to listen on."),
) -> None:
    """Every provider's simulated API, in one process on one port."""
    import uvicorn

    from outdial.settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The simulator stands in for providers' own machines and times every call it receives:
    # on a shared host it asks for the CPU ahead of the engine it measures, where allowed, so
    # its clock readings are not delayed by the load it is measuring.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    uvicorn.run(
        "outdial.simulator.app:create_app",
        factory=True,
        host=host or settings.simulator_host,
        port=port or settings.simulator_port,
        log_level="warning",
    )
