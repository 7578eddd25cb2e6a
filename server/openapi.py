"""The published OpenAPI document: every `$ref` resolves, every route lists the
refusals it really gives (each with the ErrorBody model) and /metrics is text.

Bodies are parsed by dependencies after authentication (see deps.json_body), so
FastAPI does not see them; routes name them with `request_body(Model)` and their
schemas are added to components here, `$defs` and all.

Device request signing is four headers that only work together: they are published
as four apiKey schemes required at once (one security requirement object) on every
route that depends on the device's signature, so a client generator sends all four.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from schema import signing
from schema.models import ErrorBody

_REF = "#/components/schemas/{model}"
_BODY_MODELS: dict[str, type[BaseModel]] = {}

_WHY = {
    400: "Malformed request (cursor, body encoding)",
    401: "Missing, malformed or invalid credentials",
    403: "Caller not allowed (device revoked or wiped, code invalid)",
    404: "No such resource",
    409: "Conflicts with the archive's state",
    413: "Request body over the limit",
    415: "Unsupported Content-Encoding",
    422: "Request does not match the schema",
    503: "Storage unavailable (full or not writable); retry after Retry-After seconds",
}
_SIGNED = (401, 403, 413, 503)
# The refusals each route can give, besides 405 for a wrong method.
ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/v1/enroll"): (403, 409, 413, 422, 503),
    ("post", "/v1/push"): (*_SIGNED, 400, 409, 415, 422),
    ("get", "/v1/pull"): (*_SIGNED, 400, 409, 422),
    ("post", "/v1/reconcile"): (*_SIGNED, 400, 415, 422),
    ("post", "/v1/push/verdicts"): (*_SIGNED, 400, 415, 422),
    ("get", "/v1/whoami"): _SIGNED,
    ("post", "/v1/lease"): (*_SIGNED, 409, 422),
    ("post", "/v1/final-flush"): (*_SIGNED, 400, 409, 415, 422),
    ("get", "/v1/wipe-order"): (*_SIGNED, 409),
    ("post", "/v1/wipe-receipt"): (*_SIGNED, 409, 422),
    ("post", "/v1/hr/departures"): (400, 401, 404, 409, 413, 422, 503),
    ("get", "/v1/hr/departures/{rep}"): (401, 404, 413, 503),
    ("get", "/healthz"): (413, 503),
    ("get", "/metrics"): (413,),
}
_DEFAULT_ERRORS = (400, 401, 403, 404, 409, 413, 422, 503)

_SIGNED_MESSAGE = ("`FV2-REQ\\n<METHOD>\\n<path?query>\\n<FV-Device>\\n<FV-Timestamp>\\n"
                   "<FV-Nonce>\\n<hex SHA-256 of the body>`")
DEVICE_SCHEMES: dict[str, dict[str, Any]] = {
    "DeviceId": {"name": signing.HDR_DEVICE,
                 "description": "The enrolled device's id (from `POST /v1/enroll`)."},
    "DeviceTimestamp": {"name": signing.HDR_TIMESTAMP, "description": (
        "Unix time in seconds; refused beyond the server's clock skew (default "
        f"{signing.MAX_CLOCK_SKEW_S}s).")},
    "DeviceNonce": {"name": signing.HDR_NONCE, "description": (
        "16-64 characters of [A-Za-z0-9_-], never reused; the server's signature of its "
        "answer is bound to it.")},
    "DeviceSignature": {"name": signing.HDR_SIGNATURE, "description": (
        "Base64 Ed25519 signature by the device key (registered at enrollment) over "
        + _SIGNED_MESSAGE + ".")},
}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose body `model` is parsed by deps.json_body."""
    _BODY_MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}}}


def _add_schema(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> None:
    schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas[model.__name__] = schema


def _error_response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _WHY.get(status, "Refused"), "content": {
        "application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}}
    if status == 503:
        out["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                          "description": "Seconds to wait before retrying"}}
    return out


def _add_security(spec: dict[str, Any]) -> None:
    """FastAPI lists the signature header alone (auth.DEVICE_SIGNATURE) on the routes
    that need a device: require its three companions with it. The HR bearer scheme is
    FastAPI's own (routes/hr.py); `POST /v1/enroll` needs neither."""
    schemes = spec["components"].setdefault("securitySchemes", {})
    for name, scheme in DEVICE_SCHEMES.items():
        schemes[name] = {"type": "apiKey", "in": "header", **scheme}
    device: dict[str, list[str]] = {name: [] for name in DEVICE_SCHEMES}
    for item in spec["paths"].values():
        for operation in item.values():
            security = operation.get("security", [])
            if any("DeviceSignature" in requirement for requirement in security):
                operation["security"] = [device]


def build(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _add_security(spec)
    for model in _BODY_MODELS.values():
        _add_schema(schemas, model, "validation")
    _add_schema(schemas, ErrorBody, "serialization")
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            # FastAPI's own 422 names its HTTPValidationError shape; ours is ErrorBody.
            responses.pop("422", None)
            for status in ERRORS.get((method, path), _DEFAULT_ERRORS):
                responses[str(status)] = _error_response(status)
    _add_links(spec["paths"])
    metrics = spec["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"] = {"description": "Prometheus metrics", "content": {
            "text/plain": {"schema": {"type": "string"}}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def _add_links(paths: dict[str, Any]) -> None:
    """How one answer feeds the next request: clients (and a stateful test run) follow
    a pull's cursor to the next page, and a departure (or a device's rep) to its report."""
    pull = paths.get("/v1/pull", {}).get("get")
    if pull is not None:
        pull["responses"]["200"]["links"] = {"NextPage": {
            "operationId": pull["operationId"],
            "parameters": {"cursor": "$response.body#/cursor"},
            "description": "The next page of changes, from this page's cursor."}}
    departure = paths.get("/v1/hr/departures", {}).get("post")
    report = paths.get("/v1/hr/departures/{rep}", {}).get("get")
    whoami = paths.get("/v1/whoami", {}).get("get")
    if whoami is not None and report is not None:
        whoami["responses"]["200"]["links"] = {"RepDeparture": {
            "operationId": report["operationId"], "parameters": {"rep": "$response.body#/rep_id"},
            "description": "The departure report of this device's rep (with an HR token)."}}
    if departure is not None and report is not None:
        departure["responses"].setdefault("201", {"description": "Departure recorded"})
        departure["responses"]["201"]["links"] = {"Report": {
            "operationId": report["operationId"], "parameters": {"rep": "$request.body#/rep"},
            "description": "The departure report of the rep who left."}}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
