"""FastAPI dependencies: the archive, the authenticated device, the clock, and
request bodies decoded and parsed only after the caller is authenticated."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from schema.clock import Clock

from .archive import Device
from .auth import active_device, flushing_device
from .errors import ApiError, located
from .metrics import ReplicationProbe, StaticReplication
from .rules import Archive
from .settings import Settings

M = TypeVar("M", bound=BaseModel)


def get_archive(request: Request) -> Archive:
    return request.app.state.archive  # type: ignore[no-any-return]


def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_signing_key(request: Request) -> Ed25519PrivateKey:
    return request.app.state.signing_key  # type: ignore[no-any-return]


def get_box_key(request: Request) -> X25519PrivateKey:
    return request.app.state.box_key  # type: ignore[no-any-return]


def get_replication(request: Request) -> ReplicationProbe | StaticReplication:
    return request.app.state.replication  # type: ignore[no-any-return]


ArchiveDep = Annotated[Archive, Depends(get_archive)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningKey = Annotated[Ed25519PrivateKey, Depends(get_signing_key)]
BoxKey = Annotated[X25519PrivateKey, Depends(get_box_key)]
ReplicationDep = Annotated[ReplicationProbe | StaticReplication, Depends(get_replication)]
CurrentDevice = Annotated[Device, Depends(active_device)]
# Only for the routes a revoked device still needs to leave cleanly: push and
# final-flush (its unsynced work, into quarantine), the wipe order and the receipt.
FlushingDevice = Annotated[Device, Depends(flushing_device)]


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
        first = exc.errors()[0]
        raise ApiError(422, "invalid_request", located(first["loc"], first["msg"])) from None


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
