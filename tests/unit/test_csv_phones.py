"""Phone normalisation agrees with phonenumbers' own parse, number_type, is_valid_number, format and time zones."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_timezone

from outdial.services.intake.phones import PhoneError, known_region, normalise, normalise_many, number_kind

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def reference(raw: str, region: str | None) -> tuple[str, tuple[str, ...]] | None:
    """What the library's public functions say, the slow way."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, tuple(phone_timezone.time_zones_for_number(number))


def ours(raw: str, region: str | None) -> tuple[str, tuple[str, ...]] | None:
    try:
        return normalise(raw, region)
    except PhoneError:
        return None


@given(st.sampled_from(COUNTRY_CODES), st.text(alphabet="0123456789", min_size=4, max_size=13))
@settings(max_examples=3000, deadline=None)
@example(1, "2125551234")
@example(44, "7911123456")
@example(39, "0612345678")  # Italian leading zero: the library's own parsing
@example(91, "9876543210")
def test_international_numbers_match_the_library(code: int, national: str) -> None:
    raw = f"+{code}{national}"
    assert ours(raw, None) == reference(raw, None)


def _kinds(raw: str) -> tuple[int, int] | None:
    """(ours, the library's) number type of ``raw``; None when the library cannot parse it."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    national = phonenumbers.national_significant_number(number)
    return number_kind(number.country_code, national), phonenumbers.number_type(number)


def _near(national: str) -> set[str]:
    """A national number and its neighbours: every last digit, every first digit, one digit less and more."""
    return (
        {national, national[:-1], national + "5"}
        | {national[:-1] + d for d in "0123456789"}
        | {d + national[1:] for d in "123456789"}
    )


def test_number_kind_is_the_librarys_number_type_near_every_example_number() -> None:
    """Every region's (and non-geographical code's) example numbers of every type, and numbers one
    digit away from them: valid and invalid ones of each type, in every region's patterns."""
    kinds = [k for name, k in vars(phonenumbers.PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"]
    examples = [phonenumbers.example_number_for_type(r, k) for r in phonenumbers.SUPPORTED_REGIONS for k in kinds]
    non_geographical = phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    examples += [phonenumbers.example_number_for_non_geo_entity(c) for c in non_geographical]
    checked: set[str] = set()
    for example_number in filter(None, examples):
        for national in _near(phonenumbers.national_significant_number(example_number)):
            checked.add(raw := f"+{example_number.country_code}{national}")
            found = _kinds(raw)
            assert found is None or found[0] == found[1], raw
    assert len(checked) > 15_000


@given(st.sampled_from(COUNTRY_CODES), st.text(alphabet="0123456789", min_size=1, max_size=15))
@settings(max_examples=3000, deadline=None)
@example(1, "2645841234")  # Anguilla: found by the leading digits of a +1 region
@example(7, "7172123456")  # Kazakhstan under +7
@example(39, "0612345678")  # Italian leading zero
def test_number_kind_is_the_librarys_number_type(code: int, national: str) -> None:
    found = _kinds(f"+{code}{national}")
    assert found is None or found[0] == found[1]


@given(
    st.sampled_from(["US", "IN", "GB", "DE", "BR", "AU"]),
    st.text(alphabet="0123456789 -()", min_size=6, max_size=16),
)
@settings(max_examples=1000, deadline=None)
def test_national_formats_match_the_library(region: str, national: str) -> None:
    assert ours(national, region) == reference(national, region)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 (212) 555-1234", None, "+12125551234"),
        ("+91 98765 43210", None, "+919876543210"),
        ("(212) 555-1234", "US", "+12125551234"),
        ("098765 43210", "IN", "+919876543210"),
        ("07911 123456", "GB", "+447911123456"),
        ("0044 7911 123456", "GB", "+447911123456"),
    ],
)
def test_common_ways_of_writing_a_number(raw: str, region: str | None, e164: str) -> None:
    assert normalise(raw, region)[0] == e164


def test_a_national_number_without_a_region_says_what_to_do() -> None:
    with pytest.raises(PhoneError, match=r"no country code.*default region"):
        normalise("(212) 555-1234")


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+1 212", "+999 1234567", "+12125550"])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError):
        normalise(raw)


def test_many_reports_each_failure_in_place() -> None:
    out = normalise_many(["+12125551234", "nope", "+447911123456"], None)
    assert out[0] == ("+12125551234", ("America/New_York",))
    assert isinstance(out[1], str) and "nope" in out[1]
    assert isinstance(out[2], tuple) and out[2][0] == "+447911123456"


def test_regions() -> None:
    assert known_region(" in ") == "IN"
    with pytest.raises(PhoneError, match="region code"):
        known_region("XX")
