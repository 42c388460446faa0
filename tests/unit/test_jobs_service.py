"""What a provider reported about a call, shown under one set of names (services.jobs.result_fields)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from outdial.services.jobs import RESULT_FIELDS, attempt_view, result_fields


def test_each_providers_names_are_read() -> None:
    callkaro = {"call_duration": 74, "recording_url": "https://r/1.mp3", "transcript": "hi", "summary": "ok"}
    nlpearl = {"duration": 31, "recording": "https://r/2.mp3", "transcript": [{"role": "agent", "text": "hi"}]}
    mobtexting = {"duration": 12, "recording_url": "http://r/3.mp3"}
    assert result_fields(callkaro) == {
        "duration_s": 74,
        "recording_url": "https://r/1.mp3",
        "transcript": "hi",
        "summary": "ok",
    }
    assert result_fields(nlpearl) == {
        "duration_s": 31,
        "recording_url": "https://r/2.mp3",
        "transcript": [{"role": "agent", "text": "hi"}],
    }
    assert result_fields(mobtexting) == {"duration_s": 12, "recording_url": "http://r/3.mp3"}
    assert result_fields(None) == result_fields({}) == {}


def test_a_recording_that_is_not_a_web_address_is_not_shown_as_one() -> None:
    assert result_fields({"recording_url": "javascript:alert(1)", "duration": 3}) == {"duration_s": 3}


@given(st.dictionaries(st.text(max_size=20), st.none() | st.integers() | st.text(max_size=30), max_size=8))
def test_only_known_fields_and_never_empty_ones(data: dict[str, Any]) -> None:
    shown = result_fields(data)
    assert set(shown) <= set(RESULT_FIELDS)
    assert all(value not in (None, "", [], {}) for value in shown.values())


def test_attempt_view_before_any_attempt() -> None:
    assert attempt_view(None) == {"raw_status": None, "http_status": None, "error": None}
