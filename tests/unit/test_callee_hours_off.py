"""``callee_hours: "off"`` means no callee hours wherever timing is given: the API body and the Celery
task (CallBody), a campaign (CampaignBody), a CSV column, and the setting; any other word is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from outdial.services.campaigns import CampaignBody
from outdial.services.intake.enqueue import CallBody
from outdial.services.intake.lead_columns import read_header
from outdial.settings import Settings


@pytest.mark.parametrize("spelling", ["off", "OFF", " Off "])
def test_off_is_null_in_every_model(spelling: str) -> None:
    call = CallBody.model_validate({"to_number": "+12125551234", "account": "ck", "callee_hours": spelling})
    assert call.given()["callee_hours"] is None
    campaign = CampaignBody.model_validate({"name": "c", "account": "ck", "callee_hours": spelling})
    assert campaign.timing().given()["callee_hours"] is None
    assert Settings(callee_hours=spelling).callee_hours is None


def test_off_in_a_csv_column() -> None:
    columns = read_header(["phone", "callee_hours"])
    assert columns.layer(["+12125551234", "off"]).timing == {"callee_hours": None}


def test_other_words_are_still_refused() -> None:
    with pytest.raises(ValidationError, match="callee_hours"):
        CallBody.model_validate({"to_number": "+12125551234", "account": "ck", "callee_hours": "never"})
