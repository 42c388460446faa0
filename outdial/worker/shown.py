"""What a worker, and Flower, show of an outdial task: never a full number, a lead's variables or a
lead list's contents, whoever sent the task.

A sender of ``outdial.enqueue_call`` should pass
``kwargsrepr=outdial.services.shown.enqueue_kwargsrepr(kwargs)`` (README,
"Celery interface"); one that does not still has its message's repr of the
full kwargs in the headers. The worker replaces it with the masked line in
everything it emits about the task (the ``task-received`` event Flower shows,
and its own "received" log line), whatever the sender put there; the same for
``outdial.import_leads``, whose ``csv`` is shown by its size. A monitor asking a
worker what it holds (Flower's reserved and scheduled tasks) gets these lines,
not the arguments. And Flower, which also hears the sender's ``task-sent``
event, keeps only the worker's lines for these two tasks (:class:`ShownTask`).
"""

from __future__ import annotations

from typing import Any

from celery.events.state import Task
from celery.worker.request import Request

from outdial.services.shown import enqueue_kwargsrepr, import_kwargsrepr

# Tasks whose arguments a sender outside outdial writes, and that may carry numbers or lead data.
MASKED_TASKS = frozenset({"outdial.enqueue_call", "outdial.import_leads"})


class ShownRequest(Request):  # type: ignore[misc]
    """Any outdial task as received: asked what it holds (``inspect reserved``, Flower's worker
    tabs), a worker answers with the shown lines, never the arguments."""

    def info(self, safe: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = super().info(safe=True)
        return info


class _KeywordsShown(ShownRequest):
    """A task with keyword arguments only, shown by :meth:`shown` of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Celery reads these two for its events, log lines and reprs of the request.
        task_kwargs = self.kwargs
        self._argsrepr = "()"
        self._kwargsrepr = self.shown(task_kwargs if isinstance(task_kwargs, dict) else {})

    @staticmethod
    def shown(kwargs: dict[str, Any]) -> str:
        raise NotImplementedError


class MaskedEnqueueRequest(_KeywordsShown):
    """An ``enqueue_call`` as received: the number masked, the lead's variables only named."""

    shown = staticmethod(enqueue_kwargsrepr)


class MaskedImportRequest(_KeywordsShown):
    """An ``import_leads`` as received: the campaign and options; a lead list sent inline, by its size."""

    shown = staticmethod(import_kwargsrepr)


class ShownTask(Task):  # type: ignore[misc]
    """A task as Flower keeps it: for :data:`MASKED_TASKS`, the arguments of the sender's
    ``task-sent`` event are left out (they are what the sender wrote, perhaps the whole number and
    lead); the worker's ``task-received`` lines are shown, whichever event arrives first."""

    def event(self, type_: str, timestamp: Any = None, local_received: Any = None, fields: Any = None) -> None:
        if type_ == "sent" and fields and (fields.get("name") or getattr(self, "name", None)) in MASKED_TASKS:
            fields = {k: v for k, v in fields.items() if k not in ("args", "kwargs")}
        super().event(type_, timestamp, local_received, fields)
