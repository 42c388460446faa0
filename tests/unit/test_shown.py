"""What Flower, the worker's log and the campaign page show of a task or a job: never a full phone
number, a lead's variables or a lead list's contents, whatever a sender or a provider wrote."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.contrib.testing.mocks import TaskMessage
from celery.events.state import State
from hypothesis import given
from hypothesis import strategies as st

from outdial.services.shown import import_kwargsrepr, mask_numbers
from outdial.worker.shown import MaskedEnqueueRequest, MaskedImportRequest, ShownRequest, ShownTask

NUMBER = "+12125551234"
LEAD = {"secret": "lead-variable-that-must-not-show"}


def test_numbers_in_free_text_are_masked_and_dates_and_codes_are_left() -> None:
    said = mask_numbers(f"400: invalid agent_id for {NUMBER}; retry after 2026-12-07 17:28:41 (code 4021)")
    assert said == "400: invalid agent_id for …1234; retry after 2026-12-07 17:28:41 (code 4021)"
    assert mask_numbers("to_number: '+1 212-555-1234' is not a valid phone number") == (
        "to_number: '…1234' is not a valid phone number"
    )
    assert mask_numbers("MOBtexting callee 9876543210 busy") == "MOBtexting callee …3210 busy"


@given(st.from_regex(r"\+?[1-9][0-9]{9,14}", fullmatch=True), st.text(alphabet="abc :;,()", max_size=20))
def test_no_number_survives_masking(number: str, around: str) -> None:
    shown = mask_numbers(f"{around}{number}{around}")
    assert number not in shown and number[-4:] in shown


def test_an_import_shows_its_options_and_the_size_of_an_inline_list() -> None:
    lines = f"phone,secret\n{NUMBER},{LEAD['secret']}\n"
    shown = import_kwargsrepr({"campaign": "spring", "csv": lines, "default_region": "US", "extra": 1})
    assert shown == f"campaign=spring default_region=US csv=<{len(lines)} bytes> (not shown: extra)"
    assert import_kwargsrepr({"campaign": "spring", "file": "leads.csv"}) == "campaign=spring file=leads.csv"


def request_for(request_class: type[ShownRequest], name: str, kwargs: dict[str, Any]) -> ShownRequest:
    app = Celery("shown-test", set_as_current=False)

    @app.task(name=name, Request=request_class)  # type: ignore[untyped-decorator]
    def task(**_: Any) -> None:
        pass

    # A sender outside outdial: its message's kwargsrepr is the repr of everything.
    message = TaskMessage(name, kwargs=kwargs, kwargsrepr=repr(kwargs))
    return request_class(message, app=app, task=task)


def test_a_worker_asked_what_it_holds_answers_with_the_shown_lines() -> None:
    enqueue = request_for(MaskedEnqueueRequest, "outdial.enqueue_call", {"to_number": NUMBER, "metadata": LEAD})
    imported = request_for(MaskedImportRequest, "outdial.import_leads", {"campaign": "c", "csv": f"phone\n{NUMBER}\n"})
    dispatch = request_for(ShownRequest, "outdial.dispatch_call", {"job_id": 7})
    for request in (enqueue, imported, dispatch):
        for safe in (False, True):  # inspect reserved/scheduled ask without safe=True
            info = request.info(safe=safe)
            assert NUMBER not in str(info) and LEAD["secret"] not in str(info), info
    assert enqueue.info()["kwargs"] == "to=…1234 (not shown: metadata)"
    assert imported.info()["kwargs"] == "campaign=c csv=<19 bytes>"


class ShownState(State):  # type: ignore[misc]
    Task = ShownTask


def sent(uuid: str, name: str) -> dict[str, Any]:
    return {"type": "task-sent", "uuid": uuid, "name": name, "args": "()", "kwargs": repr({"to_number": NUMBER}),
            "hostname": "api@host",
            "timestamp": 1.0, "local_received": 1.0, "clock": 1}  # fmt: skip


def received(uuid: str, name: str) -> dict[str, Any]:
    return {"type": "task-received", "uuid": uuid, "name": name, "args": "()", "kwargs": "to=…1234",
            "hostname": "w1", "timestamp": 2.0, "local_received": 2.0, "clock": 2}  # fmt: skip


def test_flower_keeps_the_worker_s_lines_whichever_event_comes_first() -> None:
    state = ShownState()
    for uuid, events in [("in-order", ["sent", "received"]), ("late-sent", ["received", "sent"])]:
        for kind in events:
            state.event((sent if kind == "sent" else received)(uuid, "outdial.enqueue_call"))
        assert state.tasks[uuid].kwargs == "to=…1234", uuid
    # Before a worker has it, nothing the sender wrote is shown.
    state.event(sent("pending", "outdial.enqueue_call"))
    assert state.tasks["pending"].kwargs is None
    # A dispatch is sent by outdial's scheduler, with its shown line: kept as sent.
    state.event(sent("dispatch", "outdial.dispatch_call"))
    assert state.tasks["dispatch"].kwargs == repr({"to_number": NUMBER})
