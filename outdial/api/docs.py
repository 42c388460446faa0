"""``/docs`` (Swagger UI) and ``/redoc`` from copies shipped in the package, so they render offline.

FastAPI's own pages load their scripts and styles from a CDN; a machine with no
internet (or a locked-down network) showed a blank page. These are the same
pages (FastAPI's ``get_swagger_ui_html`` and ``get_redoc_html``) pointed at
``outdial/api/static`` (swagger-ui-dist and redoc, see its README.md).

The document they show (``/openapi.json``) is FastAPI's, with its examples mended: see
:func:`openapi_document`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static/docs"
# The pages may load nothing from elsewhere: ReDoc's bundle fetches its maker's logo from a CDN, and
# Swagger UI a validator badge, each hidden when the load fails. Inline scripts and styles are the
# pages' own; ReDoc's search runs in a worker made from a blob.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets; ``app`` must be made with ``docs_url=None, redoc_url=None``."""
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title
    favicon = f"{STATIC_URL}/swagger-ui/favicon-32x32.png"
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _confined(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - API",
                swagger_js_url=f"{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{STATIC_URL}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=favicon,
                oauth2_redirect_url=oauth2_redirect,
            )
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _confined(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - API reference",
                redoc_js_url=f"{STATIC_URL}/redoc/redoc.standalone.js",
                redoc_favicon_url=favicon,
                with_google_fonts=False,  # no font CDN: the system's fonts
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document (made once), its examples mended.

    FastAPI writes the document without any null value, examples included
    (fastapi/fastapi#5559), so an example lost every field that is null in it, and no
    longer matched its own model. A required field missing from an example can only be
    such a null, and is put back. pydantic also sorts each example's keys; they are put
    back in the order of the model's fields, the order of the answer on the wire.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = FastAPI.openapi(app)  # kept as app.openapi_schema: mended once, in place
    schemas = document.get("components", {}).get("schemas", {})
    for schema in schemas.values():
        for example in schema.get("examples", []):
            _mend(example, schema, schemas)
    return document


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(branch.get("type") == "null" for branch in schema.get("anyOf", []))


def _mend(value: Any, schema: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Put back the nulls of an example (``value``, described by ``schema``) and its fields' order."""
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for branch in schema.get("anyOf", []):
        _mend(value, branch, schemas)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _mend(item, schema["items"], schemas)
    if not isinstance(value, dict):
        return
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value and _nullable(properties.get(name, {})):
            value[name] = None
    others = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            _mend(item, properties[name], schemas)
        elif isinstance(others, dict):
            _mend(item, others, schemas)
    if properties:
        ordered = [(k, value[k]) for k in properties if k in value] + [
            (k, v) for k, v in value.items() if k not in properties
        ]
        value.clear()
        value.update(ordered)
