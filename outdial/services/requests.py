"""Request models every face shares (HTTP API, CLI, Celery tasks), so all refuse the same input alike.

Only pydantic here: Celery workers import this module without FastAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from outdial.services.intake.safe_json import check_text

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


# A file in the import folder (OUTDIAL_IMPORT_FOLDER): a plain name, never a path.
ImportFileName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
]
# What the task reads: the CSV itself, as text (its size bounded like an upload's).
MAX_TASK_CSV_CHARS = 50 * 1_048_576
PATHS_REFUSED = (
    "outdial.import_leads no longer reads paths the caller names (a worker would read or overwrite any file): "
    "send the file's text as csv=..., or put it in the import folder (OUTDIAL_IMPORT_FOLDER) and send file=NAME"
)


class ImportLeadsTask(ImportOptions):
    """The arguments of the ``outdial.import_leads`` Celery task: the CSV's text, or a file in the import folder."""

    campaign: CampaignName
    csv: Annotated[str, AfterValidator(check_text)] | None = Field(
        default=None, min_length=1, max_length=MAX_TASK_CSV_CHARS, description="The CSV's text."
    )
    file: ImportFileName | None = Field(default=None, description="A file's name in the import folder.")

    @model_validator(mode="before")
    @classmethod
    def _no_paths(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("path" in data or "report_path" in data):
            raise ValueError(PATHS_REFUSED)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ImportLeadsTask:
        if (self.csv is None) == (self.file is None):
            raise ValueError("give the CSV as exactly one of csv=TEXT or file=NAME")
        return self
