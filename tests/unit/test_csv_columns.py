"""What the columns of a lead file mean: phone, timing overrides, variables."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outdial.services.intake.lead_columns import HeaderError, RowError, read_header


@pytest.mark.parametrize(
    ("header", "phone"),
    [
        (["name", "Phone"], 1),
        (["Phone Number", "x"], 0),
        (["mobile", "number"], 1),  # "number" comes before "mobile" in the list of names
        (["To", "name"], 0),
        (["to_number", "phone"], 1),
    ],
)
def test_phone_column_is_found_by_its_common_names(header: list[str], phone: int) -> None:
    assert read_header(header).phone == phone


def test_phone_column_named_explicitly() -> None:
    columns = read_header(["Tel", "phone"], phone_column="tel")
    assert columns.phone == 0
    assert [name for name, _ in columns.variables] == ["phone"]


def test_missing_phone_column_names_the_header() -> None:
    with pytest.raises(HeaderError, match=r"no phone column.*the header has: name, city"):
        read_header(["name", "city"])
    with pytest.raises(HeaderError, match="no column named 'cell'"):
        read_header(["phone"], phone_column="cell")


def test_a_name_twice_is_refused() -> None:
    with pytest.raises(HeaderError, match="twice"):
        read_header(["phone", "Name", "name "])


def test_overrides_and_variables() -> None:
    columns = read_header(["phone", "name", "Timezone", "priority", "schedule_at", "", "city"])
    assert columns.overrides == {"schedule_at": 4, "timezone": 2, "priority": 3}
    assert [name for name, _ in columns.variables] == ["name", "column_6", "city"]
    fields = ["+1", "Ann", "Asia/Kolkata", "7", "", "x", 'Pune "west"']
    layer = columns.layer(fields)
    assert layer.timing == {"timezone": "Asia/Kolkata", "priority": 7}
    assert json.loads(columns.variables_json(fields)) == {"name": "Ann", "column_6": "x", "city": 'Pune "west"'}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (["+1", "Mars/Base", "", ""], "timezone"),
        (["+1", "", "101", ""], "priority"),
        (["+1", "", "high", ""], "priority"),
        (["+1", "", "", "next tuesday"], "schedule_at"),
    ],
)
def test_a_bad_override_names_its_field(fields: list[str], field: str) -> None:
    columns = read_header(["phone", "timezone", "priority", "schedule_at"])
    with pytest.raises(RowError, match=f"^{field}: "):
        columns.layer(fields)
    with pytest.raises(RowError, match=f"^{field}: "):  # the cached answer says the same
        columns.layer(fields)


@given(st.lists(st.text(max_size=10), min_size=3, max_size=3))
def test_variables_json_is_json(values: list[str]) -> None:
    columns = read_header(["phone", 'a "b"', "ü\\", "c"])
    assert json.loads(columns.variables_json(["+1", *values])) == dict(zip(['a "b"', "ü\\", "c"], values, strict=True))
