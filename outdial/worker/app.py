"""The Celery application: one task per call, at-least-once delivery, idempotent effects.

Every setting that matters for not losing or doubling a call is here, each
with its reason.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from outdial.embedded import broker_url
from outdial.logs import install_celery_logging
from outdial.settings import Settings, get_settings
from outdial.worker.transport import TRANSPORT

DISPATCH_TASK = "outdial.dispatch_call"


def broker_transport(url: str) -> str | None:
    """Our Redis transport for ``redis://`` URLs (it keeps workers alive through a Redis restart,
    see :mod:`outdial.worker.transport`); any other scheme keeps the transport kombu picks from it
    (``rediss://`` must, for kombu's TLS defaults are tied to that scheme name)."""
    return TRANSPORT if url.startswith("redis://") else None


def celery_config(settings: Settings) -> dict[str, Any]:
    url = broker_url(settings)
    return dict(
        broker_url=url,
        broker_transport=broker_transport(url),
        # Outcomes live in the database; a result backend would only duplicate them.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.queue,
        task_routes={DISPATCH_TASK: {"queue": settings.queue}},
        # Ack after the task ran, and give the message back if the worker process dies:
        # a lost worker never loses a job; the conditional queued -> dialing makes the
        # second delivery harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A dispatch is one short HTTP request: a few messages per process keep it busy
        # without stranding many behind one slow provider.
        worker_prefetch_multiplier=4,
        # Redis redelivers an unacked message after this long; it must exceed the longest
        # task (one provider request with its time-outs) by far, or live tasks run twice.
        # Messages of a worker killed outright are not left waiting that long: the
        # scheduler's queued lease sends their jobs again within minutes.
        broker_transport_options={"visibility_timeout": 3600, "socket_keepalive": True},
        # SIGTERM is a warm shutdown: running dispatches finish, prefetched ones are not
        # acked and go back to the queue. A cold shutdown (SIGQUIT) still grants this long.
        worker_soft_shutdown_timeout=30.0,
        worker_enable_soft_shutdown_on_idle=True,
        # After a Redis restart workers reconnect and keep consuming, however long it takes.
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # A dispatch in flight when the broker connection drops finishes its one request and
        # records it; cancelling it midway could only turn a known result into "unknown".
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Flower sees a job from the moment it is sent, not only once a worker takes it.
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )


app = Celery(
    "outdial", include=["outdial.worker.tasks", "outdial.worker.intake_tasks", "outdial.worker.campaign_tasks"]
)
# Workers log as every outdial process does (JSON or console), with the job id on each line.
install_celery_logging()
# Read when first needed, not at import: importing the tasks must not start a Redis.
app.add_defaults(lambda: celery_config(get_settings()))
