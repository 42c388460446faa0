"""Request models the HTTP API and the Celery tasks share, so both refuse the same input alike.

Only pydantic here: Celery workers import this module without FastAPI.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from outdial.errors import InputError
from outdial.services.intake.enqueue import CallBody
from outdial.services.providers import adapter_for
from outdial.services.timing.spec import TimingFields
from outdial.vocab import Outcome, listed

# No control characters: PostgreSQL text cannot hold NUL, and none belongs in a name or key.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# A campaign is addressed by its name in URLs (``/campaigns/{name}``), so a name has no slash either.
NAME_PATTERN = r"^[^/\x00-\x1f\x7f]+$"

# What an ``Idempotency-Key`` header or task argument may be: the column holds 200 characters.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class CampaignBody(TimingFields):
    """A new campaign: its name, the account it dials through, and its SPEC 5 timing fields."""

    model_config = ConfigDict(extra="forbid")

    name: CampaignName
    account: str = Field(min_length=1, max_length=100)
    retry_on: list[str] | None = Field(
        default=None, description=f"Outcomes that use a retry; any of {listed(Outcome)}."
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


class ImportLeadsTask(ImportOptions):
    """The arguments of the ``outdial.import_leads`` Celery task."""

    campaign: CampaignName
    path: str = Field(min_length=1, max_length=4096, description="A CSV file the workers can read.")
    report_path: str | None = Field(default=None, min_length=1, max_length=4096)


def unknown_account(name: str, accounts: dict[str, Any]) -> str | None:
    """Why ``name`` is not a usable account, or None when it is.

    An account whose options its provider refuses (say CallKaro's ``language`` outside its
    enum) is not usable either: refused here, at campaign or call creation, naming the
    option, rather than failing (or being silently dropped) at dial time.
    """
    if name not in accounts:
        return f"no account named {name!r}; known: {', '.join(sorted(accounts)) or 'none'}"
    try:
        adapter = adapter_for(accounts[name].provider)
    except KeyError as exc:
        return str(exc.args[0])
    return adapter.account_problem(accounts[name])


def check_call(body: CallBody, accounts: dict[str, Any]) -> None:
    """Refuse a call on an unusable account, or with options its provider does not take
    (InputError naming the field); the options are kept as the provider's model reads them."""
    if problem := unknown_account(body.account, accounts):
        raise InputError(problem, field="account")
    body.options = adapter_for(accounts[body.account].provider).call_options(body.options)
