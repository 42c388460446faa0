"""The API's OpenAPI document (what ``/docs`` shows): every JSON answer typed, every operation
summarised, and every example one its own model accepts.

Issue 12 found ``/docs`` showing bare objects for nearly every answer, and request examples
made up from the bounds (a priority of -100, a gap of 527040 minutes).
"""

from __future__ import annotations

import csv
import importlib
import io
import pkgutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import create_engine

import outdial.api
from outdial.api.app import create_app
from outdial.services.campaigns import CampaignBody
from outdial.services.intake.enqueue import CallBody, check_call, unknown_account
from outdial.services.providers.accounts import Account, load_accounts
from outdial.services.timing.spec import TimingFields, compile_rules
from outdial.settings import Settings

# outdial/api/leads.py (the uploads, rewritten alongside) has one route without a docstring yet.
# Answers that are not JSON, and what they are.
NOT_JSON = {"text/csv", "text/plain"}
# Any valid number will do where a campaign's timing is checked on its own (as campaigns.create does).
SOME_NUMBER = "+12125550100"


@pytest.fixture
def accounts() -> dict[str, Account]:
    """The accounts the package ships (the ones the examples name)."""
    return load_accounts(Settings().accounts_file)


@pytest.fixture
def app(tmp_path: Path, accounts: dict[str, Account]) -> FastAPI:
    # The document is built without touching the database.
    return create_app(Settings(data_dir=tmp_path / "var"), create_engine("sqlite://"), accounts)


def operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, by_method in app.openapi()["paths"].items():
        for method, operation in by_method.items():
            yield method.upper(), path, operation


def api_routes() -> list[tuple[str, APIRoute]]:
    """Every documented (method, route) of the API's routers, as their modules (``outdial.api.*``) declare them."""
    found = []
    for module_info in pkgutil.iter_modules(outdial.api.__path__):
        router = getattr(importlib.import_module(f"outdial.api.{module_info.name}"), "router", None)
        if isinstance(router, APIRouter):
            found += [
                (method, route)
                for route in router.routes
                if isinstance(route, APIRoute) and route.include_in_schema
                for method in route.methods
            ]
    return found


def component(app: FastAPI, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = schema["$ref"].removeprefix("#/components/schemas/")
    found: dict[str, Any] = app.openapi()["components"]["schemas"][name]
    return name, found


def typed(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema a JSON body is described by (an array's items), or None when it says nothing."""
    if schema.get("type") == "array":
        return typed(app, schema.get("items", {}))
    if "$ref" in schema:
        schema = component(app, schema)[1]
    return schema if schema.get("properties") else None


def test_every_json_answer_has_a_schema_with_properties_and_an_example(app: FastAPI) -> None:
    checked = []
    for method, path, operation in operations(app):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content")
            assert content, f"{method} {path} {status} does not say what it answers"
            for media_type, body in content.items():
                if media_type in NOT_JSON:
                    continue
                assert media_type == "application/json", (method, path, status, media_type)
                schema = typed(app, body.get("schema", {}))
                assert schema is not None, f"{method} {path} {status} answers an untyped {body.get('schema')}"
                assert schema.get("examples"), f"{method} {path} {status}: {schema['title']} has no example"
                checked.append((method, path, status))
    assert len(checked) >= 20  # every JSON route, and both answers of POST /calls


def test_every_request_body_has_an_example(app: FastAPI) -> None:
    bodies = []
    for method, path, operation in operations(app):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            schema = typed(app, body["schema"])
            assert schema is not None and schema.get("examples"), (method, path)
            bodies.append(schema["title"])
    assert sorted(bodies) == ["CallBody", "CampaignBody"]


def test_every_operation_has_a_summary_and_a_description(app: FastAPI) -> None:
    documented = {(method, path): operation for method, path, operation in operations(app)}
    routes = api_routes()
    assert {(method, route.path) for method, route in routes} == set(documented)
    for method, route in routes:
        # FastAPI makes one from the function's name ("Create Call") when none is given: given, here.
        assert route.summary, f"{method} {route.path} has no summary of its own"
        assert documented[method, route.path]["summary"] == route.summary
        assert documented[method, route.path].get("description", "").strip(), f"{method} {route.path}"


def models_of(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation names, and theirs, all the way down."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from models_of(field.annotation)
    for argument in typing.get_args(annotation):
        yield from models_of(argument)


def documented_models() -> dict[str, type[BaseModel]]:
    """Every model a documented route answers or reads, by its name in the document."""
    found: dict[str, type[BaseModel]] = {}
    for _, route in api_routes():
        roots = [route.response_model, *(r.get("model") for r in route.responses.values())]
        roots += typing.get_type_hints(route.endpoint).values()
        for root in roots:
            found.update({model.__name__: model for model in models_of(root)})
    return found


def test_every_example_in_the_document_is_valid_for_its_model(app: FastAPI, accounts: dict[str, Account]) -> None:
    models = documented_models()
    requests = {CallBody, CampaignBody}
    seen = 0
    for name, schema in app.openapi()["components"]["schemas"].items():
        model_examples = schema.get("examples", [])
        field_examples = [
            (field, example)
            for field, spec in schema.get("properties", {}).items()
            for example in spec.get("examples", [])
        ]
        if not model_examples and not field_examples:
            continue
        model = models.get(name.removesuffix("-Input").removesuffix("-Output"))
        assert model is not None, f"{name} has examples, but no documented route uses it"
        assert model_examples, f"{name} has examples of its fields only"
        for example in model_examples:
            shown = model.model_validate(example)
            if model in requests:
                check_request(shown, accounts)
            else:
                # An answer's example is what the answer looks like on the wire, key for key.
                assert shown.model_dump(mode="json", by_alias=True, exclude_unset=True) == example, name
            seen += 1
        for field, example in field_examples:
            # A field's example, put in the model's first example, still makes a valid one.
            check_request(model.model_validate({**model_examples[0], field: example}), accounts)
            seen += 1
    assert seen >= 40


def check_request(body: BaseModel, accounts: dict[str, Account]) -> None:
    """What the API checks after the model: a usable account, options its provider takes, rules that compile."""
    if isinstance(body, CallBody):
        check_call(body, accounts)
        compile_rules(TimingFields.model_validate(body.timing_layer()), body.to_number)
    elif isinstance(body, CampaignBody):
        assert unknown_account(body.account, accounts) is None
        compile_rules(body.timing(), SOME_NUMBER)


def test_the_models_walk_finds_nested_models() -> None:
    # The walk above must see through fields, list[...] and X | None, or it would check nothing nested.
    from outdial.api.schemas import CampaignDetail, JobPage, WhyShown

    assert WhyShown in set(models_of(CampaignDetail))
    assert {m.__name__ for m in models_of(list[JobPage] | None)} == {"JobPage", "JobListed", "LatestAttempt"}


def test_every_other_answer_has_an_example_and_the_csv_examples_have_the_real_columns(app: FastAPI) -> None:
    from outdial.services.export import FIXED_COLUMNS
    from outdial.services.intake.report import REPORT_HEADER

    examples: dict[str, str] = {}
    for method, path, operation in operations(app):
        for status, response in operation["responses"].items():
            for media_type, body in response.get("content", {}).items():
                if status.startswith("2") and media_type in NOT_JSON:
                    assert body.get("example"), f"{method} {path} {status} {media_type} has no example"
                    examples[path] = body["example"]
    header = {path: next(csv.reader(io.StringIO(text))) for path, text in examples.items() if path.endswith(".csv")}
    assert header["/campaigns/{name}/export.csv"][: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert header["/imports/{import_id}/report.csv"] == list(REPORT_HEADER)
    assert "/metrics" in examples
