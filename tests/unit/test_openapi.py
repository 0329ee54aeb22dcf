"""Each service's OpenAPI document (served at /docs and /openapi.json), built from the app
without starting it (`openapi()` runs no lifespan: no Kafka, no Postgres).

Swagger UI's Authorize button works when the token is a security scheme and every route that
needs it says so; clients and people can rely on the answers when every JSON answer is a named
model."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.service import Service
from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
# Every service's answers are typed.
TYPED = list(SERVICES)
# Answers that are documents, not JSON: pick lists and slips (HTML), labels (PDF), /metrics.
NOT_JSON = {"text/html", "application/pdf", "text/csv", "text/plain"}


@cache
def app_of(name: str) -> FastAPI:
    api = importlib.import_module(f"services.{name}.api")
    handlers = importlib.import_module(f"services.{name}.handlers")
    return Service(name, handlers.handlers, ROOT / "services" / name, api.router,
                   open_writes=getattr(api, "OPEN_WRITES", ())).app()


@cache
def spec_of(name: str) -> dict[str, Any]:
    return app_of(name).openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in spec["paths"].items()
            for method, op in item.items()]


def success(op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    codes = [c for c in op["responses"] if c.startswith("2")]
    assert len(codes) == 1, f"one success answer expected, got {codes}"
    return codes[0], op["responses"][codes[0]]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def typed(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A named model, a list of them, or a map to them, or a named map with typed values (a
    zone chart: country -> zone): not a bare `object` or `{}`."""
    if "$ref" in schema:
        named = resolve(spec, schema)
        values = [named.get("additionalProperties"),
                  *(named.get("patternProperties") or {}).values()]
        return bool(named.get("properties")) or (
            named.get("type") == "object" and any(
                isinstance(v, dict) and bool(v.get("type") or v.get("$ref")) for v in values))
    if schema.get("type") == "array":
        return typed(spec, schema.get("items") or {})
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        return isinstance(extra, dict) and typed(spec, extra)
    return False


@pytest.mark.parametrize("name", SERVICES)
def test_the_admin_token_is_a_bearer_security_scheme_swagger_ui_can_send(name: str) -> None:
    schemes = spec_of(name)["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer",
                                      "description": "SHOPKEEPER_ADMIN_TOKEN"}}


def sample_path(path: str, op: dict[str, Any]) -> str:
    for p in op.get("parameters", []):
        if p["in"] == "path":
            schema = p["schema"]
            value = ("00000000-0000-4000-8000-000000000001" if schema.get("format") == "uuid"
                     else "1" if schema.get("type") == "integer" else "DE")
            path = path.replace("{" + p["name"] + "}", value)
    return path


@pytest.mark.parametrize("name", SERVICES)
def test_the_document_says_which_routes_need_the_token_as_the_app_does(name: str) -> None:
    """Asked without a token (the app not started), a route the document marks as secured
    answers 401, and one it does not mark answers something else."""
    client = TestClient(app_of(name), raise_server_exceptions=False)
    secured = 0
    for method, path, op in operations(spec_of(name)):
        declared = op.get("security") == [{"HTTPBearer": []}]
        secured += declared
        answer = client.request(method, sample_path(path, op))
        assert (answer.status_code == 401) == declared, f"{method} {path}: {answer.status_code}"
    assert secured, f"{name} documents no secured route"


@pytest.mark.parametrize("name", SERVICES)
def test_writes_need_the_token_unless_the_service_declares_them_open(name: str) -> None:
    """The HTTP guard refuses a write without the token before FastAPI sees it; the document
    must not promise otherwise (open writes: logistics' /quotes, a read with a body)."""
    open_writes = getattr(importlib.import_module(f"services.{name}.api"), "OPEN_WRITES", ())
    for method, path, op in operations(spec_of(name)):
        if method in {"POST", "PUT", "PATCH", "DELETE"} and not path.startswith(open_writes):
            assert op.get("security") == [{"HTTPBearer": []}], f"{method} {path} has no security"


@pytest.mark.parametrize("name", TYPED)
def test_every_json_answer_has_a_typed_schema(name: str) -> None:
    spec = spec_of(name)
    untyped = []
    for method, path, op in operations(spec):
        _, answer = success(op)
        content = answer.get("content") or {}
        if set(content) & NOT_JSON:
            continue
        schema = (content.get("application/json") or {}).get("schema") or {}
        if not typed(spec, schema):
            untyped.append(f"{method} {path}: {schema}")
    assert not untyped, "\n".join(untyped)


@pytest.mark.parametrize("name", SERVICES)
def test_documents_are_declared_as_what_they_are(name: str) -> None:
    spec = spec_of(name)
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert any(t.startswith("text/plain") for t in metrics)
    if name == "logistics":
        label = spec["paths"]["/labels/{parcel_id}.pdf"]["get"]["responses"]["200"]["content"]
        assert "application/pdf" in label
    if name == "fulfillment":
        for path in ("/waves/{wave_id}/picklist.html", "/parcels/{parcel_id}/slip.html"):
            assert "text/html" in spec["paths"][path]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("name", SERVICES)
def test_readiness_documents_both_answers(name: str) -> None:
    responses = spec_of(name)["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(responses)
    for code in ("200", "503"):
        ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Ready")
