"""Phone numbers as people write them, normalised to E.164 with ``phonenumbers``.

Pure functions, safe to run in worker processes: a large import spreads
:func:`normalise_many` over the cores.

Validity and time zones both need the number's type, which is the costly part
of ``phonenumbers``: about ten pattern matches per number, each behind half a
dozen Python calls that compile (or look up) the pattern again. This module
decides the type by the library's own rules over the library's own metadata
(:func:`number_kind`, the steps of ``phonenumbers.number_type``), with each
region's patterns compiled once, and derives validity and time zones from that
one answer. ``tests/unit/test_csv_phones.py`` checks the results against the
library's own functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The table ``time_zones_for_geographical_number`` reads: zones by the leading digits of the E.164 number.
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from outdial.errors import InputError

# What people put between digits; removed before the quick check for "+digits".
_SEPARATORS = str.maketrans("", "", " -().\u00a0\t")

_UNKNOWN_ZONES = (phone_timezone.UNKNOWN_TIMEZONE,)
# The library's lookup of a country's zones, used when a number's type has no
# geographical meaning (mobiles in most countries). Private in phonenumbers, so it
# falls back to the public (slower) function should it ever go away.
_country_level_zones: Callable[[PhoneNumber], tuple[str, ...]] | None = getattr(
    phone_timezone, "_country_level_time_zones_for_number", None
)

_UNKNOWN = PhoneNumberType.UNKNOWN
_FIXED_LINE = PhoneNumberType.FIXED_LINE
_MOBILE = PhoneNumberType.MOBILE
_FIXED_LINE_OR_MOBILE = PhoneNumberType.FIXED_LINE_OR_MOBILE
# The types ``number_type`` tries before fixed line and mobile, in its order.
_SPECIAL_KINDS = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)

# A number description, compiled: its possible lengths (empty: any) and its pattern.
# None is a description no number matches (absent, or without a pattern).
_Desc = tuple[frozenset[int], re.Pattern[str]] | None


class PhoneError(InputError):
    """A value that is not a callable phone number; the message says why."""


def known_region(region: str) -> str:
    """An ISO 3166 region code phonenumbers knows (``IN``, ``us``), upper-cased."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneError(f"{region!r} is not a region code phonenumbers knows (e.g. US, IN, GB)")
    return code


def _desc(description: Any) -> _Desc:
    pattern = getattr(description, "national_number_pattern", None)
    if not pattern:
        return None
    return frozenset(description.possible_length), re.compile(pattern)


def _matches(national: str, desc: _Desc) -> bool:
    """``phonenumbers``' ``_is_number_matching_desc``: the length is possible and the pattern matches it all."""
    if desc is None:
        return False
    lengths, pattern = desc
    return (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None


@dataclass(frozen=True)
class _Region:
    """One region's metadata, as number types are decided from it."""

    general: _Desc
    special: tuple[tuple[_Desc, int], ...]
    fixed_line: _Desc
    mobile: _Desc
    same_fixed_line_and_mobile: bool
    leading_digits: re.Pattern[str] | None

    @classmethod
    def of(cls, metadata: Any) -> _Region:
        return cls(
            general=_desc(metadata.general_desc),
            special=tuple((_desc(getattr(metadata, name)), kind) for name, kind in _SPECIAL_KINDS),
            fixed_line=_desc(metadata.fixed_line),
            mobile=_desc(metadata.mobile),
            same_fixed_line_and_mobile=bool(metadata.same_mobile_and_fixed_line_pattern),
            leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None,
        )

    def kind(self, national: str) -> int:
        """``phonenumbers``' ``_number_type_helper``, step by step."""
        if not _matches(national, self.general):
            return _UNKNOWN
        for desc, kind in self.special:
            if _matches(national, desc):
                return kind
        if _matches(national, self.fixed_line):
            if self.same_fixed_line_and_mobile or _matches(national, self.mobile):
                return _FIXED_LINE_OR_MOBILE
            return _FIXED_LINE
        if not self.same_fixed_line_and_mobile and _matches(national, self.mobile):
            return _MOBILE
        return _UNKNOWN


@cache
def _regions(code: int) -> tuple[bool, tuple[_Region, ...]]:
    """Whether ``code`` names one region, and its regions that have metadata, in the library's order."""
    names = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(names) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, names[0])
        return True, () if metadata is None else (_Region.of(metadata),)
    found = (PhoneMetadata.metadata_for_region(name.upper(), None) for name in names)
    return False, tuple(_Region.of(metadata) for metadata in found if metadata is not None)


def number_kind(code: int, national: str) -> int:
    """``phonenumbers.number_type`` of the number with country calling code ``code`` and national
    significant number ``national``.

    As the library does: the region first (the only one, or the first of the code's
    regions whose leading digits match the number, or, without leading digits, that
    finds the number a type), then the type by that region's patterns.
    """
    single, regions = _regions(code)
    if single:
        return regions[0].kind(national) if regions else _UNKNOWN
    for region in regions:
        if region.leading_digits is not None:
            if region.leading_digits.match(national):
                return region.kind(national)
        else:
            kind = region.kind(national)
            if kind != _UNKNOWN:
                return kind
    return _UNKNOWN


@cache
def _national_prefix(code: int) -> re.Pattern[str] | None:
    """The country's pattern for a national prefix (trunk "0", carrier codes), if it has one."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, phonenumbers.region_code_for_country_code(code))
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(pattern) if pattern else None


def _quick_parse(cleaned: str) -> tuple[int, str] | None:
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
            return code, national
    return None


@cache
def _country_zones(code: int) -> tuple[str, ...]:
    assert _country_level_zones is not None
    return tuple(_country_level_zones(PhoneNumber(country_code=code)))


def _zones(e164: str, code: int, kind: int) -> tuple[str, ...]:
    """``phonenumbers.timezone.time_zones_for_number`` of a valid number of type ``kind``."""
    if not phonenumbers.is_number_type_geographical(kind, code):
        if _country_level_zones is None:
            return tuple(phone_timezone.time_zones_for_number(phonenumbers.parse(e164)))
        return _country_zones(code)
    digits = e164[1:]
    for width in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
        zones = TIMEZONE_DATA.get(digits[:width])
        if zones is not None:
            return zones
    return _UNKNOWN_ZONES


def normalise(raw: str, region: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The E.164 form of ``raw`` and the zone names it may ring in (``Etc/Unknown`` when none is known).

    ``region`` reads national formats (``(212) 555-1234`` with ``US``).
    """
    text = raw.strip()
    if not text:
        raise PhoneError("the phone number is empty")
    cleaned = text.translate(_SEPARATORS)
    quick = _quick_parse(cleaned) if cleaned.startswith("+") else None
    if quick is not None:
        code, national = quick
        e164 = cleaned
    else:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and region is None:
                raise PhoneError(
                    f"{text!r} has no country code: write it as +<country code><number> or give a default region"
                ) from None
            raise PhoneError(f"{text!r} is not a phone number ({exc._msg})") from None
        code, national = number.country_code or 0, phonenumbers.national_significant_number(number)
        e164 = ""
    kind = number_kind(code, national)
    if kind == _UNKNOWN:
        raise PhoneError(f"{text!r} is not a valid phone number")
    if not e164:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return e164, _zones(e164, code, kind)


def normalise_many(raws: Sequence[str], region: str | None) -> list[tuple[str, tuple[str, ...]] | str]:
    """:func:`normalise` over a chunk; a failure is its message (a str) in place of the result."""
    out: list[tuple[str, tuple[str, ...]] | str] = []
    for raw in raws:
        try:
            out.append(normalise(raw, region))
        except PhoneError as exc:
            out.append(str(exc))
    return out
