"""Every refusal is a 4xx with a JSON body {"error": code, "message": ...}."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .archive import ArchiveError, StorageError
from .metrics import AUTH_FAILURES


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(status_code=status, content=body, headers=headers)


STORAGE_RETRY_AFTER_S = 60

# What each kind of refusal from the archive is over HTTP.
_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "forbidden": 403,
           "unauthorized": 401, "unavailable": 503}


def located(loc: Any, msg: Any) -> str:
    """`field.path: problem`, or just the problem when it is about the whole body."""
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else str(msg)


def problem(error: Any) -> str:
    """One pydantic error as `where: what`. An unknown tag of a tagged union (an op's
    `kind`) is said briefly: pydantic's own text lists every tag as an enum repr."""
    if error.get("type") == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        expected = re.findall(r"'([^']+)'>", str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag", ""))[:40]
        msg = (f"unknown {ctx.get('discriminator', 'kind')} {tag!r}: expected one of "
               + ", ".join(expected))
        return located(error.get("loc", ()), msg)
    return located(error.get("loc", ()), error.get("msg", ""))


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    # Echoing the input back would put request data (maybe customer data) in
    # error logs; location and message are enough to fix the request.
    return [{"loc": list(e.get("loc", ())), "msg": problem(e).split(": ", 1)[-1]}
            for e in errors[:20]]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 403):
            AUTH_FAILURES.labels(exc.code).inc()
        # A 413 (a gzip body that inflates past the cap): do not keep serving a client
        # that sends too much on this connection.
        closing = {"connection": "close"} if exc.status == 413 else None
        return error_response(exc.status, exc.code, exc.message, headers=closing)

    @app.exception_handler(ArchiveError)
    async def _archive(_: Request, exc: ArchiveError) -> JSONResponse:
        return error_response(_STATUS.get(exc.kind, 400), exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return error_response(422, "invalid_request", located(first["loc"], first["msg"]), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                 413: "body_too_large"}
        # Keep the exception's headers: a 405 must say what is Allowed.
        headers = dict(exc.headers or {})
        if exc.status_code == 413:  # do not read the rest of an oversized body: hang up
            headers["connection"] = "close"
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail), headers=headers or None)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        logging.getLogger("fieldvault.storage").error(
            "storage failure on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "storage_unavailable",
            "the server cannot store data right now (storage full, not writable or "
            "unreachable); nothing was changed: retry later",
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)})
