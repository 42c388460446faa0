"""The API's one translation of errors: outdial's own (:mod:`outdial.errors`) and the libraries'.

Bad input is a 422 that names the field, whichever layer found it; never a 500.
FastAPI's own request validation, a pydantic model validated inside a handler, and
any :class:`~outdial.errors.InputError` (a timing ``SpecError`` among them) all answer
in one shape: ``{"detail": [{"loc": [...], "field": "...", "msg": "...", "type": "..."}]}``.
``NotFound`` is a 404 and ``Conflict`` a 409, each with its one-line ``detail``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError

from outdial import logs
from outdial.errors import ConfigError, Conflict, InputError, NotFound, OutdialError
from outdial.services.timing.spec import SpecError

log = logging.getLogger("outdial.api")


def _field(loc: Sequence[Any]) -> str:
    # The location without where it came from (body, query, header): the field as the caller wrote it.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form", "file", "cookie")]
    return ".".join(parts) or "body"


_ECHO_MAX = 60


def problems(errors: Iterable[Any], where: str = "body") -> list[dict[str, Any]]:
    """pydantic's errors as JSON, each naming its field; a short query or path value is quoted in the
    message, a body's ``input`` never (it may be large, or carry a number or a secret)."""
    out = []
    for error in errors:
        loc = list(error.get("loc", ()))
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            # FastAPI puts the character offset where a field name goes: no field is at fault, the body is.
            offsets = [p for p in loc if isinstance(p, int)]
            loc = [p for p in loc if not isinstance(p, int)] or ["body"]
            msg = f"{msg} at character {offsets[0]}" if offsets else msg
        if where and (not loc or loc[0] not in ("body", "query", "path", "header", "form", "cookie")):
            loc = [where, *loc]
        given = error.get("input")
        if loc and loc[0] in ("query", "path") and isinstance(given, str) and len(given) <= _ECHO_MAX:
            # A query or path value is short and typed by a person: say which one was refused.
            msg = f"{msg} (got {given!r})"
        out.append({"loc": loc, "field": _field(loc), "msg": msg, "type": error.get("type")})
    return out


def field_error(field: str, message: str, where: str = "body", status: int = 422) -> HTTPException:
    """An error about one field, shaped like every other validation error."""
    loc = [where, *field.split(".")]
    return HTTPException(status, [{"loc": loc, "field": field, "msg": message, "type": "value_error"}])


OUT_OF_RANGE = "is too far in the past or future to schedule"


def spec_error(exc: SpecError, where: str = "body") -> HTTPException:
    return field_error(exc.field, exc.message, where)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": problems(exc.errors(), where="")}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model_invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": problems(exc.errors(include_input=False))}, status_code=422)

    @app.exception_handler(OverflowError)
    async def _out_of_range(_request: Request, exc: OverflowError) -> JSONResponse:
        # A date so near year 1 or 9999 that scheduling arithmetic leaves the calendar: only
        # schedule_at gives such dates. The routes that admit jobs name it themselves; this
        # is the net under the others.
        error = field_error("schedule_at", f"out of the range of dates that can be scheduled ({exc})")
        return JSONResponse({"detail": error.detail}, status_code=422)

    @app.exception_handler(DataError)
    async def _unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the models let through (say a NUL in a text column on
        # PostgreSQL). The caller's input, so a 4xx; logged, since a model should have caught it.
        log.warning("database refused a value", extra=logs.fields(error=str(exc.orig)[:200]))
        error = field_error("body", "holds a value the database cannot store (e.g. a NUL character)")
        return JSONResponse({"detail": error.detail}, status_code=422)

    # The service errors (outdial.errors), translated here and nowhere else.
    @app.exception_handler(OutdialError)
    async def _refused(_request: Request, exc: OutdialError) -> JSONResponse:
        # outdial.errors' table: each refusal as its status, with its one line for a person.
        if isinstance(exc, InputError):
            error = field_error(exc.field or "body", exc.reason)
            return JSONResponse({"detail": error.detail}, status_code=422)
        if isinstance(exc, ConfigError):
            # The deployment's fault, not the caller's: logged in full, answered without paths or names.
            log.error("configuration error", extra=logs.fields(error=str(exc)))
            return JSONResponse({"detail": "outdial is misconfigured; see its log"}, status_code=500)
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, _exc: RecursionError) -> JSONResponse:
        # json.loads recurses once per nesting level: a body nested deeper than Python's
        # stack is the caller's doing, not a server fault.
        error = field_error("body", "is nested too deeply to read")
        return JSONResponse({"detail": error.detail}, status_code=422)
