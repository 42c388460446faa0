from hypothesis import given
from hypothesis import strategies as st

from outdial.services.breaker import should_trip


def test_needs_enough_calls_before_judging() -> None:
    assert not should_trip(calls=19, failures=19, min_calls=20, max_failure_rate=0.5)
    assert should_trip(calls=20, failures=11, min_calls=20, max_failure_rate=0.5)


def test_the_threshold_itself_does_not_trip() -> None:
    assert not should_trip(calls=20, failures=10, min_calls=20, max_failure_rate=0.5)


@given(st.integers(1, 1000), st.data(), st.floats(0, 1))
def test_trips_exactly_when_the_rate_is_passed(calls: int, data: st.DataObject, rate: float) -> None:
    failures = data.draw(st.integers(0, calls))
    assert should_trip(calls, failures, 1, rate) == (failures / calls > rate)
