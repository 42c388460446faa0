"""Request models the HTTP API and the Celery tasks share, so both refuse the same input alike.

Only pydantic here: Celery workers import this module without FastAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from outdial.services.intake.safe_json import check_text
from outdial.services.timing.spec import TimingFields

# No control characters: PostgreSQL text cannot hold NUL, and none belongs in a name or key.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# A campaign is addressed by its name in URLs (``/campaigns/{name}``), so a name has no slash either.
NAME_PATTERN = r"^[^/\x00-\x1f\x7f]+$"

# What an ``Idempotency-Key`` header or task argument may be: the column holds 200 characters.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]

OUTCOMES = ("completed", "no_answer", "busy", "voicemail", "failed")


class CampaignBody(TimingFields):
    """A new campaign: its name, the account it dials through, and its SPEC 5 timing fields."""

    model_config = ConfigDict(extra="forbid")

    name: CampaignName
    account: str = Field(min_length=1, max_length=100)
    retry_on: list[str] | None = Field(
        default=None, description=f"Outcomes that use a retry; any of {', '.join(OUTCOMES)}."
    )
    cron: str | None = Field(default=None, max_length=100, description="Recurring rounds: a cron expression.")
    calls_per_minute: int | None = Field(default=None, ge=1, le=100_000)

    def timing(self) -> TimingFields:
        """The campaign's timing layer: the SPEC 5 fields given here, and only those."""
        given = self.given()
        return TimingFields.model_validate({k: v for k, v in given.items() if k in TimingFields.model_fields})


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


def unknown_account(name: str, accounts: dict[str, Any]) -> str | None:
    """Why ``name`` is not a usable account, or None when it is."""
    if name in accounts:
        return None
    return f"no account named {name!r}; known: {', '.join(sorted(accounts)) or 'none'}"
