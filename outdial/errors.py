"""The one error hierarchy. Services raise these; each face translates them in one place:

| error            | HTTP | CLI exit | Celery task        |
| ---------------- | ---- | -------- | ------------------ |
| ``InputError``   | 422  | 2        | rejected, no retry |
| ``NotFound``     | 404  | 1        | rejected, no retry |
| ``Conflict``     | 409  | 1        | rejected, no retry |
| ``ConfigError``  | 500  | 2        | rejected, no retry |

Input errors name what was wrong (``field``, and ``row`` for a file's line) so the
message can say exactly which value to fix.
"""

from __future__ import annotations


class OutdialError(Exception):
    """The root: anything outdial refuses on purpose, with a message meant for a person."""


class InputError(OutdialError, ValueError):
    """Bad input: names the field (and the row of a file) so the caller can fix it."""

    def __init__(self, reason: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason  # without the field's name, for faces that show the field apart
        self.field = field
        self.row = row


class NotFound(OutdialError, LookupError):
    """The campaign, job, lead or key asked for does not exist (or is not the caller's)."""


class Conflict(OutdialError):
    """The request is valid but the current state forbids it (e.g. resuming a cancelled campaign)."""


class ConfigError(OutdialError):
    """The deployment is misconfigured: a settings value, the accounts file, a credential."""
