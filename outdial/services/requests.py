"""Request models every face shares (HTTP API, CLI, Celery tasks), so all refuse the same input alike.

Only pydantic here: Celery workers import this module without FastAPI.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# No control characters: PostgreSQL text cannot hold NUL, and none belongs in a name or key.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# A campaign is addressed by its name in URLs (``/campaigns/{name}``), so a name has no slash either.
NAME_PATTERN = r"^[^/\x00-\x1f\x7f]+$"

# What an ``Idempotency-Key`` header or task argument may be: the column holds 200 characters.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class ImportOptions(BaseModel):
    """How to read a lead file: the ``outdial import`` options, the upload's query and ``outdial.import_leads``."""

    model_config = ConfigDict(extra="forbid")

    default_region: str | None = Field(
        default=None, min_length=2, max_length=3, description="Region for national numbers, e.g. IN, US."
    )
    phone_column: str | None = Field(default=None, min_length=1, max_length=200)


class ImportLeadsTask(ImportOptions):
    """The arguments of the ``outdial.import_leads`` Celery task."""

    campaign: CampaignName
    path: str = Field(min_length=1, max_length=4096, description="A CSV file the workers can read.")
    report_path: str | None = Field(default=None, min_length=1, max_length=4096)
