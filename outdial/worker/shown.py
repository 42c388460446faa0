"""What the worker reports of a task it received, for tasks whose senders outdial does not control.

A sender of ``outdial.enqueue_call`` should pass
``kwargsrepr=outdial.services.shown.enqueue_kwargsrepr(kwargs)`` (README,
"Celery interface"); one that does not still has its message's repr of the
full kwargs in the headers. The worker replaces it with the masked line in
everything it emits about the task (the ``task-received`` event Flower shows,
and its own "received" log line), whatever the sender put there.
"""

from __future__ import annotations

from typing import Any

from celery.worker.request import Request

from outdial.services.shown import enqueue_kwargsrepr


class MaskedEnqueueRequest(Request):  # type: ignore[misc]
    """An ``enqueue_call`` as received: the number masked, the lead's variables only named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Celery reads these two for its events, log lines and reprs of the request.
        task_kwargs = self.kwargs
        self._argsrepr = "()"
        self._kwargsrepr = enqueue_kwargsrepr(task_kwargs if isinstance(task_kwargs, dict) else {})
