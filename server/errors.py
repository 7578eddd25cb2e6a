"""Every refusal is a 4xx with a JSON body {"error": code, "message": ...}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .archive import ArchiveError
from .metrics import AUTH_FAILURES


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(status_code=status, content=body)


def located(loc: Any, msg: Any) -> str:
    """`field.path: problem`, or just the problem when it is about the whole body."""
    where = ".".join(str(p) for p in loc)
    return f"{where}: {msg}" if where else str(msg)


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    # Echoing the input back would put request data (maybe customer data) in
    # error logs; location and message are enough to fix the request.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in errors[:20]]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (401, 403):
            AUTH_FAILURES.labels(exc.code).inc()
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(ArchiveError)
    async def _archive(_: Request, exc: ArchiveError) -> JSONResponse:
        return error_response(exc.status if exc.status >= 400 else 400, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        return error_response(422, "invalid_request", located(first["loc"], first["msg"]), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"),
                              str(exc.detail))
