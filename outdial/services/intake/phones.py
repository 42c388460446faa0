"""Phone numbers as people write them, normalised to E.164 with ``phonenumbers``.

Pure functions, safe to run in worker processes: a large import spreads
:func:`normalise_many` over the cores.

Validity and time zones both need the number's type, which is the costly part
of ``phonenumbers`` (pattern matching per region). ``is_valid_number`` and
``time_zones_for_number`` each compute it again, so this module computes it
once and derives both answers from it; ``tests/unit/test_csv_phones.py``
checks the result against the library's own functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from outdial.errors import InputError

# What people put between digits; removed before the quick check for "+digits".
_SEPARATORS = str.maketrans("", "", " -().\u00a0\t")

# The library's own lookup of a country's zones, used when a number's type has no
# geographical meaning (mobiles in most countries). Private in phonenumbers, so it
# falls back to the public (slower) function should it ever go away.
_country_zones: Callable[[PhoneNumber], tuple[str, ...]] | None = getattr(
    phone_timezone, "_country_level_time_zones_for_number", None
)


class PhoneError(InputError):
    """A value that is not a callable phone number; the message says why."""


def known_region(region: str) -> str:
    """An ISO 3166 region code phonenumbers knows (``IN``, ``us``), upper-cased."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneError(f"{region!r} is not a region code phonenumbers knows (e.g. US, IN, GB)")
    return code


@cache
def _national_prefix(code: int) -> re.Pattern[str] | None:
    """The country's pattern for a national prefix (trunk "0", carrier codes), if it has one."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, phonenumbers.region_code_for_country_code(code))
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(pattern) if pattern else None


def _quick_parse(cleaned: str) -> PhoneNumber | None:
    """``+<digits>`` split into country code and national number, exactly as ``phonenumbers.parse`` does.

    Country calling codes are prefix-free, so the first of the 1-, 2- and
    3-digit prefixes that is a code is the code. Anything the library would
    transform (a national number with a leading zero, or one that starts like
    the country's national prefix) returns None and goes the library's way.
    """
    digits = cleaned[1:]
    if not (7 <= len(digits) <= 17 and digits.isdigit() and digits.isascii()) or digits[0] == "0":
        return None
    for width in (1, 2, 3):
        code = int(digits[:width])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            national = digits[width:]
            prefix = _national_prefix(code)
            if not national or national[0] == "0" or (prefix is not None and prefix.match(national)):
                return None
            return PhoneNumber(country_code=code, national_number=int(national))
    return None


def _zones(number: PhoneNumber, kind: int) -> tuple[str, ...]:
    if _country_zones is None:
        names = phone_timezone.time_zones_for_number(number)
    elif phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        names = phone_timezone.time_zones_for_geographical_number(number)
    else:
        names = _country_zones(number)
    return tuple(names)


def normalise(raw: str, region: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The E.164 form of ``raw`` and the zone names it may ring in (``Etc/Unknown`` when none is known).

    ``region`` reads national formats (``(212) 555-1234`` with ``US``).
    """
    text = raw.strip()
    if not text:
        raise PhoneError("the phone number is empty")
    cleaned = text.translate(_SEPARATORS)
    number = _quick_parse(cleaned) if cleaned.startswith("+") else None
    quick = number is not None
    if number is None:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and region is None:
                raise PhoneError(
                    f"{text!r} has no country code: write it as +<country code><number> or give a default region"
                ) from None
            raise PhoneError(f"{text!r} is not a phone number ({exc._msg})") from None
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise PhoneError(f"{text!r} is not a valid phone number")
    e164 = cleaned if quick else phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164, _zones(number, kind)


def normalise_many(raws: Sequence[str], region: str | None) -> list[tuple[str, tuple[str, ...]] | str]:
    """:func:`normalise` over a chunk; a failure is its message (a str) in place of the result."""
    out: list[tuple[str, tuple[str, ...]] | str] = []
    for raw in raws:
        try:
            out.append(normalise(raw, region))
        except PhoneError as exc:
            out.append(str(exc))
    return out
