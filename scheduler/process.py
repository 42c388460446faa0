"""The scheduler process: every part of the loop, composed from the settings."""

from __future__ import annotations

import httpx
import redis

from outdial.db import get_engine
from outdial.settings import Settings
from providers.accounts import load_accounts
from scheduler.breaker import BreakerCheck
from scheduler.leader import Leadership
from scheduler.loop import Scheduler, SendJob
from scheduler.poller import StatusPoller
from scheduler.rounds import Rounds
from worker.pacer import Pacer


def celery_sender(settings: Settings) -> SendJob:
    from worker.app import DISPATCH_TASK, app

    def send(job_id: int) -> None:
        app.send_task(DISPATCH_TASK, args=[job_id], queue=settings.queue)

    return send


def build(settings: Settings) -> tuple[Scheduler, Leadership]:
    engine = get_engine()
    accounts = load_accounts(settings.accounts_file)
    broker = redis.Redis.from_url(settings.broker_url())
    scheduler = Scheduler(
        engine,
        settings,
        celery_sender(settings),
        poller=StatusPoller(engine, settings, accounts, httpx.Client()),
        breakers=BreakerCheck(engine, settings),
        rounds=Rounds(engine, settings),
        accounts=accounts,
        pacer=Pacer(broker, settings),
    )
    return scheduler, Leadership(broker, lease_s=settings.leader_lease_s)
