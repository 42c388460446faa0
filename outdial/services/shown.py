"""What Flower (and any Celery monitor) shows of an outdial task: readable, and never a full number.

Celery shows a task's arguments as the ``argsrepr``/``kwargsrepr`` strings its
sender put in the message (by default ``repr(args)``). A dispatch's only
argument is a job id, which says nothing to an operator; an ``enqueue_call``'s
keyword arguments hold the callee's number and the lead's variables, which
must not be on screen. These functions make the strings shown instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Of a number, this many trailing digits are shown: enough to tell calls apart, not to dial.
SHOWN_DIGITS = 4
# enqueue_call's kwargs that are safe and useful on screen; everything else is only named.
_SHOWN_FIELDS = ("account", "campaign", "idempotency_key", "schedule_at", "priority")
# import_leads's kwargs shown as they are; the csv's contents only by their size.
_SHOWN_IMPORT_FIELDS = ("campaign", "file", "default_region", "phone_column")
# A phone number inside free text (a provider's error, a refusal): 7 or more digits in a run, or
# after a "+" with spaces or dashes between. Dates and times (separated runs of 2 to 4) are left.
_NUMBER_IN_TEXT = re.compile(r"\+\d[\d -]{5,}\d|\d{7,}")


def masked(number: str | None) -> str:
    """``+12125551234`` -> ``…1234``; anything shorter than that shows as ``…``."""
    digits = "".join(c for c in str(number or "") if c.isdigit())
    return "…" + digits[-SHOWN_DIGITS:] if len(digits) > SHOWN_DIGITS else "…"


def dispatch_repr(job_id: int, campaign: str | None, account: str, attempt: int, to_number: str) -> str:
    """The argument line of a ``dispatch_call``: the job and who is called, number masked."""
    where = f"campaign={campaign}" if campaign else "campaign=-"
    return f"job={job_id} {where} account={account} attempt={attempt} to={masked(to_number)}"


def enqueue_kwargsrepr(kwargs: Mapping[str, Any]) -> str:
    """The keyword line of an ``enqueue_call``: its plain fields, the number masked, the rest only named."""
    return _keywords_line(kwargs, _SHOWN_FIELDS, {"to_number": f"to={masked(kwargs.get('to_number'))}"}, first=True)


def import_kwargsrepr(kwargs: Mapping[str, Any]) -> str:
    """The keyword line of an ``import_leads``: the campaign and options, a ``csv`` by its size only."""
    inline = kwargs.get("csv")
    size = f"csv=<{len(inline.encode('utf-8', 'replace'))} bytes>" if isinstance(inline, str) else None
    return _keywords_line(kwargs, _SHOWN_IMPORT_FIELDS, {"csv": size})


def _keywords_line(
    kwargs: Mapping[str, Any], plain: Sequence[str], told: Mapping[str, str | None], *, first: bool = False
) -> str:
    """``plain`` fields as they are (60 characters at most), the ``told`` ones as given (before the
    plain ones when ``first``), and every other key by its name only."""
    shown = [f"{name}={kwargs[name]!s:.60}" for name in plain if kwargs.get(name) is not None]
    special = [text for text in told.values() if text is not None]
    parts = special + shown if first else shown + special
    hidden = sorted(k for k in kwargs if k not in told and k not in plain)
    if hidden:
        parts.append(f"(not shown: {', '.join(hidden)})")
    return " ".join(parts)


def mask_numbers(text: str) -> str:
    """Free text with every phone number in it masked, for a screen or a log: a provider's error or
    a refusal may quote the number it was given."""
    return _NUMBER_IN_TEXT.sub(lambda found: masked(found.group()), text)
