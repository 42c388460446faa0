"""First due times for many leads at once, decided by :func:`outdial.services.timing.admit.admit`.

A lead's admission depends on its number only through the number's time
zones (callee hours, ``timezone = "callee"``), and on its timing layer. Most
leads of a file share both, so admissions are computed once per (layer,
zones) and numbered; 1,000,000 leads compile the rules a few times, not a
million times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from outdial.services.timing.admit import Admission, admit, merge_layers
from outdial.settings import Settings

# Beyond this many distinct (layer, zones) pairs (say, a schedule_at per lead) the
# cache is cleared, so memory stays bounded; an admission is then computed again.
MAX_CACHED = 50_000
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class NumberedAdmission:
    id: int
    admission: Admission
    lead_timing: dict[str, Any]  # the lead's own layer, stored with the lead
    lead_timing_json: str
    job_timing_json: str  # the merged layers, stored with the job


class Admissions:
    def __init__(self, campaign_timing: dict[str, Any], now: datetime, settings: Settings) -> None:
        self._campaign = campaign_timing
        self._now = now
        self._settings = settings
        self.cached: dict[tuple[tuple[str, ...], tuple[str, ...]], NumberedAdmission] = {}
        self._next_id = 0
        self.new: list[NumberedAdmission] = []  # made since the caller last took them

    def get(
        self, layer_key: tuple[str, ...], layer: dict[str, Any], layer_json: str, zones: tuple[str, ...], e164: str
    ) -> NumberedAdmission:
        """The admission of a lead; raises ``SpecError`` for timing that can never be valid."""
        key = (layer_key, zones)
        found = self.cached.get(key)  # callers in a hot loop read ``cached`` themselves first
        if found is not None:
            return found
        if len(self.cached) >= MAX_CACHED:
            self.cached.clear()
        # ``e164`` stands for every number with these zones; an error names it, so errors
        # are not cached (they are rare and must name the row's own number).
        admission = admit(merge_layers(self._campaign, layer), e164, self._now, self._settings)
        numbered = NumberedAdmission(self._next_id, admission, layer, layer_json, _JSON.encode(admission.timing))
        self._next_id += 1
        self.cached[key] = numbered
        self.new.append(numbered)
        return numbered

    def take_new(self) -> list[NumberedAdmission]:
        new, self.new = self.new, []
        return new
