"""FastAPI dependencies for the routes: what the app holds (re-exported from state.py),
the authenticated device, and request bodies decoded and parsed only after the caller
is authenticated."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from .archive import Device
from .auth import Pusher, active_device, flushing_device, pushing_device
from .errors import ApiError, problem
from .state import (
    ArchiveDep,
    BoxKey,
    ClockDep,
    ReplicationDep,
    ResponseSigner,
    SettingsDep,
    SigningKey,
)

M = TypeVar("M", bound=BaseModel)

CurrentDevice = Annotated[Device, Depends(active_device)]
# Only for the routes a revoked device still needs to leave cleanly: push and
# final-flush (its unsynced work, into quarantine), the wipe order and the receipt.
FlushingDevice = Annotated[Device, Depends(flushing_device)]
# The push: a flushing device whose request nonce the push records itself (auth.Pusher).
PushingDevice = Annotated[Pusher, Depends(pushing_device)]

__all__ = ["ArchiveDep", "BoxKey", "ClockDep", "CurrentDevice", "FlushingDevice", "PushingDevice",
           "ReplicationDep", "ResponseSigner", "SettingsDep", "SigningKey", "decode_body",
           "json_body", "parse_json"]


def decode_body(request: Request, raw: bytes, limit: int) -> bytes:
    """The body as sent plain, or gzip-inflated to at most `limit` bytes (the agent
    gzips large batches; a small gzip must not inflate into a huge one)."""
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "identity":
        return raw
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding", "send the body plain or gzip-encoded")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise ApiError(400, "bad_encoding", "the gzip body is corrupt") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(413, "body_too_large", f"decompressed body is over {limit} bytes")
    if not inflater.eof:  # zlib does not complain about a stream cut short
        raise ApiError(400, "bad_encoding", "the gzip body is truncated")
    return out


def parse_json(model: type[M], raw: bytes) -> M:
    """The body as `model`, or 422 naming the first problem and where it is. Strict:
    JSON types must match (no `false` for an integer, no number for a time)."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", problem(exc.errors()[0])) from None


def json_body(model: type[M], auth: Callable[..., Any]) -> Any:
    """A body parameter read and validated only once `auth` has accepted the caller.

    FastAPI parses a plain body parameter before any dependency runs, so a caller
    without credentials would learn about body errors (422) before being refused
    (401). The route documents the body with `openapi.request_body(model)`."""

    # A default, not an annotation: this module's annotations are strings, and the
    # closure's `auth` could not be resolved from one.
    async def parse(request: Request, _: Any = Depends(auth)) -> Any:
        return parse_json(model, await request.body())

    return Depends(parse)
