"""The Celery interface for other services: ``outdial.enqueue_call`` and ``outdial.import_leads``;
and ``outdial.run_import``, which imports a lead list uploaded over HTTP.

Both take plain JSON keyword arguments, are validated with the same pydantic
models as the HTTP API (:class:`outdial.services.intake.enqueue.CallBody`,
:class:`outdial.api.schemas.ImportLeadsTask`) and call the same functions, so a call
enqueued here is the job ``POST /calls`` would have made from the same body.

Send them to outdial's queue (``OUTDIAL_QUEUE``, ``outdial.dispatch`` by
default): workers consume only that one. Results are not stored (outdial
keeps outcomes in its database, ``task_ignore_result``): a caller that wants
its job id passes an ``idempotency_key`` and asks ``GET
/jobs?idempotency_key=KEY``; the same key sent again never makes a second job.
Input that fails validation fails the task with a one-line reason naming the
field (in the worker log and Flower), and is not retried.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from outdial import logs
from outdial.embedded import broker_url
from outdial.errors import Conflict, InputError
from outdial.models import ImportState
from outdial.services.intake.csv_import import ImportFailed, import_csv
from outdial.services.intake.enqueue import CallBody, check_call, enqueue_call
from outdial.services.intake.uploads import Upload, give_up, run_upload
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.requests import IdempotencyKey, ImportLeadsTask
from outdial.services.shown import mask_numbers
from outdial.services.timing.spec import SpecError
from outdial.settings import Settings, get_settings
from outdial.store.db import get_engine
from outdial.worker.app import app
from outdial.worker.shown import MaskedEnqueueRequest, MaskedImportRequest, ShownRequest

ENQUEUE_TASK = "outdial.enqueue_call"
IMPORT_TASK = "outdial.import_leads"
RUN_IMPORT_TASK = "outdial.run_import"

log = logging.getLogger("outdial.intake_tasks")
_key = TypeAdapter(IdempotencyKey | None)


class TaskRefused(InputError):
    """The task's arguments were invalid; the message names the field. Never retried.

    Flower and the log show the message: any phone number quoted in it is masked."""

    def __init__(self, reason: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(mask_numbers(reason), field=field, row=row)


def _reason(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False):
        field = ".".join(str(p) for p in error["loc"]) or "arguments"
        problems.append(f"{field}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)


@cache
def _accounts(path: Path) -> dict[str, Account]:
    return load_accounts(path)


def enqueue_from_kwargs(
    engine: Engine, settings: Settings, accounts: dict[str, Account], kwargs: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Validate a task's kwargs as ``POST /calls`` validates its body and header, and enqueue the call."""
    fields = dict(kwargs)
    try:
        key = _key.validate_python(fields.pop("idempotency_key", None))
        body = CallBody.model_validate(fields)
    except ValidationError as exc:
        raise TaskRefused(_reason(exc)) from None
    try:
        check_call(body, accounts)
    except InputError as exc:
        raise TaskRefused(f"{exc.field or 'account'}: {exc.reason}") from None
    try:
        result = enqueue_call(engine, body, now, settings, key)
    except (SpecError, Conflict) as exc:
        raise TaskRefused(str(exc)) from None
    except OverflowError:
        raise TaskRefused("schedule_at: is too far in the past or future to schedule") from None
    except ValueError as exc:
        raise TaskRefused(f"to_number: {exc}") from None
    return result.as_dict()


def import_from_kwargs(engine: Engine, settings: Settings, kwargs: dict[str, Any]) -> dict[str, object]:
    """Validate a task's kwargs as the upload validates its options, and import the file."""
    try:
        args = ImportLeadsTask.model_validate(kwargs)
    except ValidationError as exc:
        raise TaskRefused(_reason(exc)) from None
    if args.csv is not None:
        # Encoded back to bytes (it holds no lone surrogate): the import reads bytes, as from an upload.
        source: BinaryIO = io.BytesIO(args.csv.encode("utf-8"))
    else:
        assert args.file is not None
        found = settings.import_dir / args.file
        if not found.is_file():
            raise TaskRefused(f"file: no file {args.file!r} in the import folder {settings.import_dir}")
        source = found.open("rb")
    try:
        # The reject report goes where uploads' go (under the data directory), never to a caller's path.
        with source:
            summary = import_csv(
                engine,
                settings,
                args.campaign,
                source,
                default_region=args.default_region,
                phone_column=args.phone_column,
            )
    except ImportFailed as exc:
        raise TaskRefused(str(exc)) from None
    return summary.as_dict()


# A database that is briefly away is waited for; bad input is not retried. Retrying an
# enqueue is safe with an idempotency key, and an import commits all or nothing.
_RETRY: dict[str, Any] = dict(
    autoretry_for=(OperationalError,), retry_backoff=2, retry_backoff_max=60, max_retries=10, retry_jitter=True
)


@app.task(name=ENQUEUE_TASK, Request=MaskedEnqueueRequest, **_RETRY)  # type: ignore[untyped-decorator]
def enqueue_call_task(**kwargs: Any) -> dict[str, Any]:
    """Enqueue one call: the fields of ``POST /calls``'s body, plus an optional ``idempotency_key``."""
    settings = get_settings()
    result = enqueue_from_kwargs(get_engine(), settings, _accounts(settings.accounts_file), kwargs, datetime.now(UTC))
    log.info("call enqueued", extra=logs.fields(job_id=result["job_id"], created=result["created"]))
    return result


@app.task(name=IMPORT_TASK, Request=MaskedImportRequest, **_RETRY)  # type: ignore[untyped-decorator]
def import_leads_task(**kwargs: Any) -> dict[str, object]:
    """Import a CSV lead list: ``campaign``, the CSV as ``csv`` (its text) or ``file`` (a name in the
    import folder), and the import's options. Never a path: that let callers read and overwrite files."""
    summary = import_from_kwargs(get_engine(), get_settings(), kwargs)
    log.info("leads imported", extra=logs.fields(campaign=kwargs.get("campaign"), **summary))
    return summary


class UploadRefused(InputError):
    """The uploaded file was refused as a whole; the import imported nothing. Never retried."""


def send_run_import(upload: Upload, settings: Settings) -> None:
    """Queue the import of a stored upload on the broker and queue of ``settings``; Flower shows its
    campaign and import id."""
    shown = f"{{'import_id': '{upload.import_id}', 'campaign': {upload.campaign!r}}}"
    with app.connection_for_write(broker_url(settings)) as connection:
        app.send_task(
            RUN_IMPORT_TASK,
            kwargs={"import_id": upload.import_id},
            kwargsrepr=shown,
            queue=settings.queue,
            connection=connection,
        )


@app.task(  # type: ignore[untyped-decorator]
    name=RUN_IMPORT_TASK, throws=(TaskRefused, UploadRefused), Request=ShownRequest, **_RETRY
)
def run_import_task(import_id: str) -> dict[str, object]:
    """Import a lead list uploaded with ``POST /campaigns/{name}/leads``; progress is in ``GET /imports/{id}``."""
    engine, settings = get_engine(), get_settings()
    try:
        ended = run_upload(engine, settings, import_id)
    except OperationalError:
        raise  # the database is away: retried, the import still running
    except Exception as exc:
        reason = f"the import stopped on an internal error ({type(exc).__name__}); see the worker log"
        give_up(engine, settings, import_id, reason)
        raise
    if ended is None:
        raise TaskRefused(f"import_id: no import {import_id!r}")
    if ended.state == ImportState.RUNNING:
        # Not taken: a run holds it and its heartbeat is fresh. A task sent twice; or the retry of
        # a try that the database failed, whose heartbeat has not gone stale yet: the scheduler's
        # sweep sends the task again once it has.
        log.info("upload left to the run that holds it", extra=logs.fields(import_id=import_id, state=ended.state))
        return {"import_id": import_id, "state": ended.state}
    summary = {k: ended._mapping[k] for k in ("rows", "accepted", "rejected", "duplicates", "suppressed")}
    log.info(
        "upload imported",
        extra=logs.fields(import_id=import_id, campaign=ended.campaign, state=ended.state, **summary),
    )
    if ended.state == ImportState.FAILED:
        # FAILURE in Flower, with the reason, rather than a SUCCESS that imported nothing.
        raise UploadRefused(f"import {import_id} failed: {ended.error}")
    return {"import_id": import_id, "state": ended.state, **summary}
