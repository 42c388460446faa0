"""What a call's free-form data (``metadata``) may hold: JSON that every provider can be sent.

Refused, each naming the path inside the field: a lone surrogate (valid in a JSON
escape, but no UTF-8 encoding exists, so the request to the provider could never be
built), NaN or Infinity (not JSON at all), nesting deeper than :data:`MAX_DEPTH`, more
than :data:`MAX_BYTES` in all.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 8
MAX_BYTES = 16_384


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as UTF-8 text, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate at character {exc.start} (not encodable as UTF-8)"
    return None


def check_text(value: str) -> str:
    """A pydantic after-validator for plain text fields."""
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _problem(value: Any, path: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return f"{path}: {found}" if (found := text_problem(value)) else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: {value} is not a JSON number (NaN and Infinity are refused)"
    if isinstance(value, dict):
        for key, item in value.items():
            if found := text_problem(str(key)):
                return f"{path}: a key {found}"
            if found := _problem(item, f"{path}.{key}", depth + 1):
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := _problem(item, f"{path}[{index}]", depth + 1):
                return found
    return None


def value_problem(value: Any) -> str | None:
    """Why a JSON value cannot be sent (a lone surrogate, NaN, too deep), or None."""
    found = _problem(value, "value", 1)
    return found.removeprefix("value: ") if found else None


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """A pydantic after-validator for ``metadata``: sendable, finite, shallow, small."""
    if found := _problem(value, "metadata", 1):
        raise ValueError(found.removeprefix("metadata: "))
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_BYTES}")
    return value
