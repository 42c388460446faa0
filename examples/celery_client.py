"""Enqueue a call in outdial from another service, through Celery only.

    python examples/celery_client.py --to +14155550123 --account sim-callkaro

The default broker is the Redis `outdial up` starts (127.0.0.1:6390); pass
``--broker`` with outdial's ``OUTDIAL_REDIS_URL`` for any other deployment.

Nothing of outdial is imported: the task is addressed by its stable name and
its arguments are plain JSON. The call's job id is found afterwards through the
idempotency key (``GET /jobs?idempotency_key=KEY`` with an API key), and
sending the same key again never makes a second job, so a retry is always safe.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from celery import Celery
from kombu.exceptions import OperationalError

ENQUEUE_TASK = "outdial.enqueue_call"
IMPORT_TASK = "outdial.import_leads"
OUTDIAL_QUEUE = "outdial.dispatch"  # the workers' queue: OUTDIAL_QUEUE on their side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6390/0", help="outdial's Redis, OUTDIAL_REDIS_URL")
    parser.add_argument("--queue", default=OUTDIAL_QUEUE)
    parser.add_argument("--to", required=True, help="E.164 number, e.g. +14155550123")
    parser.add_argument(
        "--account", required=True, help="an account of outdial's accounts file, e.g. sim-callkaro (shipped)"
    )
    parser.add_argument("--key", default=None, help="idempotency key (default: a new UUID)")
    args = parser.parse_args()

    client = Celery(broker=args.broker)
    key = args.key or f"example-{uuid.uuid4()}"
    try:
        send(client, args, key)
    except OperationalError as exc:
        # One line, not kombu's traceback: the usual cause is a wrong --broker or outdial not running.
        sys.exit(f"error: cannot reach the broker {args.broker} ({exc}): start outdial, or pass --broker <its Redis>")
    print(f"sent {ENQUEUE_TASK}; find the job with GET /jobs?idempotency_key={key}")


def send(client: Celery, args: argparse.Namespace, key: str) -> None:
    client.send_task(
        ENQUEUE_TASK,
        kwargs={
            # The body of POST /calls, as JSON: CallKaro's fields plus account and timezone.
            "to_number": args.to,
            "account": args.account,
            "metadata": {"name": "Asha", "order_id": "A-1001"},
            "timezone": "callee",
            "min_trigger_time": "10:00",
            "max_trigger_time": "18:00",
            "number_of_retries": 2,
            "gap_between_retries": [30, 120],
            "idempotency_key": key,
        },
        queue=args.queue,
        retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    )

    # A lead list imported into an existing campaign: its text (or file=NAME, a file in the
    # workers' import folder, OUTDIAL_IMPORT_FOLDER). Paths are refused.
    # client.send_task(IMPORT_TASK, kwargs={"campaign": "spring-renewals", "csv": open("leads.csv").read(),
    #                                       "default_region": "IN"}, queue=args.queue)


if __name__ == "__main__":
    main()
