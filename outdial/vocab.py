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
