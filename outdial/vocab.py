"""The words every layer shares: one enum each, imported by providers, retry policy, API and simulator.

Here, in the base layer, because the simulator (which stands apart from the
engine) speaks the same vocabulary as the adapters it is played against.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The normalised result of a placed call (SPEC 6)."""

    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    FAILED = "failed"


class Verdict(StrEnum):
    """What a create-call request came to, as far as placing the call goes (kept as ``attempts.result``)."""

    ACCEPTED = "accepted"  # the provider took the call; the outcome comes later
    RETRY_SAFE = "retry_safe"  # nothing was placed: safe to send again, budget untouched
    UNKNOWN = "unknown"  # the call may or may not have been placed: never resend blindly
    REJECTED = "rejected"  # it can never succeed as sent


# Requests the provider did not take as a call (or may not have): what breakers and error lists count.
NOT_ACCEPTED: tuple[Verdict, ...] = (Verdict.RETRY_SAFE, Verdict.UNKNOWN, Verdict.REJECTED)


class Language(StrEnum):
    """Call languages (ISO 639-1) as CallKaro's ``language`` enum lists them."""

    HI = "hi"
    EN = "en"
    KN = "kn"
    MR = "mr"
    TA = "ta"
    TE = "te"
    BN = "bn"
    GU = "gu"
    ML = "ml"


def listed(values: type[StrEnum]) -> str:
    """The values of an enum as a person reads them: ``a, b, c``."""
    return ", ".join(v.value for v in values)
