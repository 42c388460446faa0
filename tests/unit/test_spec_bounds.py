"""Values no user means and date arithmetic cannot hold are refused up front, naming the field."""

import pytest

from outdial.services.timing.spec import SpecError, load_job_spec


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schedule_at", "0001-01-01T00:00:00"),
        ("schedule_at", "9999-12-31T23:59:00+14:00"),
        ("gap_between_retries", 10**20),
        ("gap_between_retries", [5, 366 * 24 * 60 + 1]),
    ],
)
def test_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(SpecError) as refused:
        load_job_spec({"to_number": "+12125551234", "number_of_retries": 1, field: value})
    assert refused.value.field == field


def test_a_year_of_gap_and_far_dates_inside_the_range_are_fine() -> None:
    spec = load_job_spec(
        {"to_number": "+12125551234", "schedule_at": "2999-01-01T09:00:00", "gap_between_retries": 366 * 24 * 60}
    )
    assert spec.schedule_at == "2999-01-01T09:00:00"
