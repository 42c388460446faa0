"""The scheduler's per-campaign turns: never ahead of the worker's gate by more than the horizon,
and the campaign's full rate when ticks come often enough; plus what Flower shows of a task."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from outdial.services.pacing.pacer import CampaignTurns
from outdial.services.shown import dispatch_repr, enqueue_kwargsrepr, masked

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(turns: CampaignTurns, cpm: int, gaps: list[float], due: int) -> list[tuple[float, int]]:
    """Tick after each gap, sending all the budget allows of ``due`` jobs; (time, total sent) after each tick."""
    t, total, seen = 0.0, 0, []
    for gap in gaps:
        t += gap
        now = T0 + timedelta(seconds=t)
        n = min(turns.budget(1, cpm, now), due - total)
        for _ in range(n):
            turns.took(1, cpm, 1, now)
        total += n
        seen.append((t, total))
    return seen


@given(
    cpm=st.integers(1, 600),
    gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=60),
    horizon=st.floats(0.1, 3.0),
)
def test_no_job_is_sent_before_its_turn_is_within_the_horizon(cpm: int, gaps: list[float], horizon: float) -> None:
    interval = 60 / cpm
    for t, total in run(CampaignTurns(horizon), cpm, gaps, due=10_000):
        # The n-th job's turn is (n - 1) intervals after the first, which is at the earliest tick.
        first = gaps[0]
        assert total <= math.floor((t - first + horizon) / interval + 1e-9) + 1


def test_ticks_twice_a_second_reach_the_full_rate() -> None:
    seen = run(CampaignTurns(horizon_s=1.2), 60, [0.5] * 120, due=10_000)
    assert 60 <= seen[-1][1] <= 62  # 60 s of 60 calls a minute (plus the turns within the horizon)


def test_a_campaign_no_longer_paced_is_forgotten() -> None:
    turns = CampaignTurns(horizon_s=1.0)
    turns.took(7, 1, 5, T0)  # five turns taken: the next is five minutes away
    assert turns.budget(7, 1, T0) == 0
    turns.forget_others(set())
    assert turns.budget(7, 1, T0) == 1


def test_numbers_are_masked_to_their_last_four_digits() -> None:
    assert masked("+12125551234") == "…1234"
    assert masked("123") == "…" and masked(None) == "…"
    line = dispatch_repr(42, "spring", "ck", 2, "+919876543210")
    assert line == "job=42 campaign=spring account=ck attempt=2 to=…3210"


def test_an_enqueue_shows_its_plain_fields_and_only_the_names_of_the_rest() -> None:
    shown = enqueue_kwargsrepr(
        {"to_number": "+12125551234", "account": "ck", "metadata": {"name": "Asha"}, "idempotency_key": "k1"}
    )
    assert shown == "to=…1234 account=ck idempotency_key=k1 (not shown: metadata)"
    assert "Asha" not in shown and "5551234" not in shown
