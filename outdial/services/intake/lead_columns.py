"""What each column of a lead file means: the phone, per-lead timing overrides, or a variable.

Pure: a header in, a :class:`LeadColumns` out, which then reads one record's
fields into a raw phone, the lead's variables (as JSON) and its timing layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from outdial.errors import InputError
from outdial.services.intake.csv_table import normalise_name
from outdial.services.timing.spec import TimingFields

PHONE_COLUMNS = ("phone", "phone_number", "to_number", "number", "mobile", "to")
# Per-lead columns that override the campaign's timing (SPEC 5 fields); an empty cell keeps the
# campaign's value. callee_hours takes HH:MM-HH:MM or "off".
OVERRIDE_COLUMNS = ("schedule_at", "timezone", "priority", "callee_hours")

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The C function behind json.dumps(ensure_ascii=False) for one string, quotes included.
encode_string: Callable[[str], str] = json.encoder.encode_basestring


class HeaderError(InputError):
    """The header cannot be used (no phone column, a name twice); one line for a person."""


class RowError(InputError):
    """One record cannot become a lead; the message is the report's reason."""


@dataclass(frozen=True)
class Layer:
    """A lead's timing overrides, validated: the layer merged over the campaign's."""

    key: tuple[str, ...]  # the raw override values, the cache key
    timing: dict[str, Any]
    timing_json: str


@dataclass
class LeadColumns:
    header: list[str]
    phone: int
    overrides: dict[str, int]  # SPEC 5 field -> column index
    variables: list[tuple[str, int]]  # variable name -> column index
    _layers: dict[tuple[str, ...], Layer | str] = field(default_factory=dict)
    _keys: list[tuple[str, int]] | None = None

    @property
    def width(self) -> int:
        return len(self.header)

    @property
    def phone_name(self) -> str:
        return self.header[self.phone]

    def variables_json(self, fields: list[str]) -> str:
        """The variables as a JSON object, built from pre-encoded keys: this runs once per row."""
        if self._keys is None:
            self._keys = [(encode_string(name) + ":", i) for name, i in self.variables]
        return "{" + ",".join([key + encode_string(fields[i]) for key, i in self._keys]) + "}"

    def layer(self, fields: list[str]) -> Layer:
        """The record's timing overrides; raises :class:`RowError` naming the field."""
        key = self._override_key(fields)
        found = self._layers.get(key)
        if found is None:
            found = self._layers[key] = _validate_layer(dict(zip(self.overrides, key, strict=True)), key)
        if isinstance(found, str):
            raise RowError(found)
        return found

    def _override_key(self, fields: list[str]) -> tuple[str, ...]:
        if not self.overrides:
            return ()
        return tuple(fields[i].strip() for i in self.overrides.values())


def _validate_layer(raw: dict[str, str], key: tuple[str, ...]) -> Layer | str:
    given = {name: value for name, value in raw.items() if value}
    try:
        fields = TimingFields.model_validate(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "timing"
        return f"{name}: {str(err['msg']).removeprefix('Value error, ')} (got {given.get(name, '')!r})"
    timing = fields.given()
    return Layer(key, timing, _JSON.encode(timing))


def read_header(header: list[str], phone_column: str | None = None) -> LeadColumns:
    """Which column is the phone, which override the timing, which are variables."""
    names = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    loose = [normalise_name(n) for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(loose):
        if name in seen:
            raise HeaderError(f"the header names column {names[i]!r} twice (columns {seen[name] + 1} and {i + 1})")
        seen[name] = i
    if phone_column is not None:
        wanted = normalise_name(phone_column)
        if wanted not in seen:
            raise HeaderError(f"no column named {phone_column!r}; the header has: {', '.join(names)}")
        phone = seen[wanted]
    else:
        found = next((seen[c] for c in PHONE_COLUMNS if c in seen), None)
        if found is None:
            raise HeaderError(
                "no phone column: name one (--phone-column on the command line, phone_column over HTTP and Celery),"
                f" or call it one of {', '.join(PHONE_COLUMNS)};"
                f" the header has: {', '.join(names)}"
            )
        phone = found
    overrides = {c: seen[c] for c in OVERRIDE_COLUMNS if c in seen and seen[c] != phone}
    used = {phone, *overrides.values()}
    variables = [(name, i) for i, name in enumerate(names) if i not in used]
    return LeadColumns(names, phone, overrides, variables)
