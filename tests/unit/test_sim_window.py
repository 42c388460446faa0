from hypothesis import given
from hypothesis import strategies as st

from outdial.simulator.base import max_in_window


def test_half_open_windows() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 0.99], 1.0) == 3
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1  # t and t + 1 are in different windows
    assert max_in_window([0.3, 0.0, 0.9, 1.2], 1.0) == 3


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=60))
def test_matches_a_brute_force_count(times: list[float]) -> None:
    brute = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    assert max_in_window(times, 1.0) == brute
