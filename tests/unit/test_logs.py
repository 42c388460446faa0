"""Log calls never fail their caller: ``extra=`` keys go through :func:`outdial.logs.fields`."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial import logs

PACKAGE = Path(logs.__file__).resolve().parent
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def test_a_reserved_name_would_fail_the_call_and_fields_renames_it(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("outdial.test")
    with pytest.raises(KeyError, match="created"):
        log.info("call enqueued", extra={"created": True})
    log.info("call enqueued", extra=logs.fields(job_id=7, created=True, name="x"))
    (record,) = [r for r in caplog.records if r.name == "outdial.test"]
    assert record.job_id == 7 and record.created_ is True and record.name_ == "x"  # type: ignore[attr-defined]


@given(st.dictionaries(st.sampled_from(sorted(logs.RESERVED | {"job_id", "reason"})), st.integers()))
def test_no_key_from_fields_collides_with_a_record_attribute(values: dict[str, int]) -> None:
    extra = logs.fields(**values)
    assert not set(extra) & logs.RESERVED and len(extra) == len(values)
    logging.getLogger("outdial.test").makeRecord("n", logging.INFO, "f", 1, "m", (), None, extra=extra)


def _unguarded_extras(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS:
            for keyword in node.keywords:
                value = keyword.value
                guarded = (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "fields"
                    and isinstance(value.func.value, ast.Name)
                    and value.func.value.id == "logs"
                )
                if keyword.arg == "extra" and not guarded:
                    lines.append(node.lineno)
    return lines


def test_the_source_check_finds_a_raw_extra() -> None:
    assert _unguarded_extras('log.info("x", extra={"created": 1})\nlog.info("y", extra=logs.fields(a=1))') == [1]


def test_every_extra_in_outdial_goes_through_fields() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _unguarded_extras(path.read_text()))
    }
    assert found == {}, f"pass extra=logs.fields(...) instead: {found}"


@pytest.mark.parametrize(("level", "httpx_level"), [("INFO", logging.WARNING), ("DEBUG", logging.NOTSET)])
def test_httpx_request_lines_are_left_out_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, level: str, httpx_level: int
) -> None:
    from outdial.logs import setup_logging
    from outdial.settings import reset_settings

    root = logging.getLogger()
    kept = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    monkeypatch.setenv("OUTDIAL_LOG_LEVEL", level)
    reset_settings()
    try:
        setup_logging()
        assert logging.getLogger("httpx").level == logging.getLogger("httpcore").level == httpx_level
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
        assert logging.getLogger("httpx").isEnabledFor(logging.INFO) == (level == "DEBUG")
    finally:
        root.handlers[:], root.level = kept[0], kept[1]
        for name, was in kept[2].items():
            logging.getLogger(name).setLevel(was)
        reset_settings()
