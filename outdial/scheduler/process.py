"""The scheduler process: every part of the loop, composed from the settings."""

from __future__ import annotations

import httpx
import redis
from celery import Celery

from outdial.embedded import broker_url
from outdial.scheduler.leader import Leadership
from outdial.scheduler.loop import ClaimedJob, Scheduler, SendImport, SendJob
from outdial.scheduler.poller import StatusPoller
from outdial.services.breaker import BreakerCheck
from outdial.services.intake.uploads import Upload
from outdial.services.pacing.pacer import Pacer
from outdial.services.providers.accounts import load_accounts
from outdial.services.rounds import Rounds
from outdial.settings import Settings
from outdial.store.db import get_engine


def celery_sender(settings: Settings, producer: Celery | None = None) -> SendJob:
    """Send each job to ``settings.queue`` through ``producer`` (default: outdial's Celery app)."""
    from outdial.worker.app import DISPATCH_TASK, app

    producer = producer or app

    def send(job: ClaimedJob) -> None:
        # Flower shows argsrepr instead of the bare id: the campaign, account, attempt and
        # the callee's number masked (outdial.services.shown).
        producer.send_task(DISPATCH_TASK, args=[int(job)], argsrepr=job.argsrepr, kwargsrepr="{}", queue=settings.queue)

    return send


def celery_import_sender(settings: Settings) -> SendImport:
    """Send a lost import's ``outdial.run_import`` again, as the API sent it first."""
    from outdial.worker.intake_tasks import send_run_import

    def send(upload: Upload) -> None:
        send_run_import(upload, settings)

    return send


def build(settings: Settings) -> tuple[Scheduler, Leadership]:
    engine = get_engine()
    accounts = load_accounts(settings.accounts_file)
    broker = redis.Redis.from_url(broker_url(settings))
    scheduler = Scheduler(
        engine,
        settings,
        celery_sender(settings),
        poller=StatusPoller(engine, settings, accounts, httpx.Client()),
        breakers=BreakerCheck(engine, settings),
        rounds=Rounds(engine, settings),
        accounts=accounts,
        pacer=Pacer(broker, settings),
        send_import=celery_import_sender(settings),
    )
    return scheduler, Leadership(broker, lease_s=settings.leader_lease_s)
