"""The chaos suite's checker catches each kind of broken promise (and passes a clean run)."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.invariants import JobFacts, check
from outdial.services.providers.accounts import Account, Limits
from outdial.settings import Settings

AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
ACCOUNTS = {"a": Account("a", "callkaro", "http://x", limits=Limits(calls_per_second=5, max_concurrent=3))}
NOW_OPEN = {"callee_hours": None}


def job(
    number: str, state: str = "completed", recorded: int = 1, possible: int = 1, sent: int = 1, **timing: object
) -> JobFacts:
    return JobFacts(state, number, {**NOW_OPEN, **timing}, recorded, possible, sent, [AT] * possible)


def sim(placed: dict[str, int], rate: int = 5, active: int = 3) -> dict[str, dict[str, object]]:
    return {"callkaro": {"accepted_by_number": placed, "max_calls_per_second": rate, "max_active_calls": active}}


def test_a_clean_run_passes() -> None:
    report = check(
        [job("+12125550100"), job("+12125550101")], sim({"+12125550100": 1, "12125550101": 1}), ACCOUNTS, Settings()
    )
    assert report["max_requests_per_attempt"] == 1
    for key in (
        "jobs_not_terminal",
        "unexplained_request_mismatch",
        "calls_outside_window",
        "rate_over_limit",
        "concurrency_over_limit",
    ):
        assert report[key] == 0, key


def test_a_second_call_for_one_attempt_is_caught() -> None:
    report = check([job("+12125550100")], sim({"+12125550100": 2}), ACCOUNTS, Settings())
    assert report["max_requests_per_attempt"] == 2
    assert report["unexplained_request_mismatch"] == 1


def test_a_call_whose_answer_was_lost_is_explained_by_the_unknown_job() -> None:
    lost = job("+12125550100", state="unknown", recorded=0, possible=1)
    assert check([lost], sim({"+12125550100": 1}), ACCOUNTS, Settings())["unexplained_request_mismatch"] == 0
    recorded_but_never_placed = job("+12125550101", recorded=1)
    assert check([recorded_but_never_placed], sim({}), ACCOUNTS, Settings())["unexplained_request_mismatch"] == 1


def test_jobs_in_flight_and_requests_outside_the_window_are_counted() -> None:
    in_flight = job("+12125550100", state="accepted")
    # 15:00 UTC is 10:00 in New York: outside an 11:00-12:00 window.
    outside = job("+12125550101", timezone="America/New_York", min_trigger_time="11:00", max_trigger_time="12:00")
    report = check([in_flight, outside], sim({"+12125550100": 1, "+12125550101": 1}), ACCOUNTS, Settings())
    assert report["jobs_not_terminal"] == 1
    assert report["calls_outside_window"] == 1
    # The offending job is shown in full: its number, rules, and the windows around the request.
    (shown,) = report["violations"]["outside_window"]
    assert shown["number"] == "+12125550101" and shown["timing"]["max_trigger_time"] == "12:00"
    (request,) = shown["requests"]
    assert request["windows"] and all(not (a <= request["requested_at"] < b) for a, b in request["windows"])


def test_limits_are_judged_from_the_provider_side() -> None:
    report = check([job("+12125550100")], sim({"+12125550100": 1}, rate=6, active=4), ACCOUNTS, Settings())
    assert report["rate_over_limit"] == 1 and report["concurrency_over_limit"] == 1


def test_calls_past_the_budget_are_counted_and_a_worker_exit_fails_the_run() -> None:
    from bench.chaos import broken as failures

    # Budget 1 + 1 retry = 2; the double dial of issue 15 placed a third call.
    within = job("+12125550100", recorded=2, possible=2, sent=2, number_of_retries=1)
    past = job("+12125550101", recorded=3, possible=3, sent=3, number_of_retries=1)
    report = check([within, past], sim({"+12125550100": 2, "+12125550101": 3}), ACCOUNTS, Settings())
    assert report["calls_over_budget"] == 1
    assert report["violations"]["over_budget"] == [{"number": "+12125550101", "calls_placed": 3, "budget": 2}]
    assert failures({**report, "worker_exits": 0}) == ["calls_over_budget"]
    clean = check([within], sim({"+12125550100": 2}), ACCOUNTS, Settings())
    assert failures({**clean, "worker_exits": 0}) == []
    assert failures({**clean, "worker_exits": 1}) == ["worker_exits"]
