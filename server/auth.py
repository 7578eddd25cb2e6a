"""Request authentication: every agent request is signed by its device key.

Checks, in order: known device, fresh timestamp, valid Ed25519 signature over
method, path, device id, time, nonce and body digest, then an unseen nonce. The nonce is
recorded only after the signature verifies, so nobody can burn another
device's nonces. Everything but the signature is checked before the body is read:
a stranger never gets the server to hold its body (whose size the BodyLimit
middleware caps per route, before any of this runs).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from schema import signing
from schema.validation import ASCII_INT

from .archive import Device
from .errors import ApiError
from .rules import Archive
from .rules.archive import Nonce
from .settings import Settings
from .state import ArchiveDep, SettingsDep

# Declares the signature to FastAPI's OpenAPI, which then lists it on exactly the routes
# that depend on the two functions below; server/openapi.py adds its three companion
# headers to that requirement. Checking is authenticate's job, not this object's.
DEVICE_SIGNATURE = APIKeyHeader(name=signing.HDR_SIGNATURE, scheme_name="DeviceSignature",
                                auto_error=False)
SignatureHeader = Annotated[str | None, Security(DEVICE_SIGNATURE)]

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DEVICE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def check_headers(archive: Archive, headers: dict[str, str], skew_s: int,
                  now: float | None = None) -> Device:
    """Everything that does not need the body: well-formed headers, a known device, a
    fresh time. Checked before the body is read, so a stranger is refused before the
    server reads (and holds) up to a batch's worth of bytes for it."""
    device_id = headers.get(signing.HDR_DEVICE.lower(), "")
    ts = headers.get(signing.HDR_TIMESTAMP.lower(), "")
    nonce = headers.get(signing.HDR_NONCE.lower(), "")
    sig = headers.get(signing.HDR_SIGNATURE.lower(), "")
    if not (device_id and ts and nonce and sig):
        raise _unauthorized("missing FV-Device/FV-Timestamp/FV-Nonce/FV-Signature headers")
    if not _DEVICE.fullmatch(device_id) or not _NONCE.fullmatch(nonce) or not ASCII_INT.fullmatch(ts):
        raise _unauthorized("malformed authentication headers")
    device = archive.get_device(device_id)
    if device is None:
        raise _unauthorized("unknown device: enroll it again")
    now = time.time() if now is None else now
    if abs(now - int(ts)) > skew_s:
        raise _unauthorized(
            f"request time is more than {skew_s}s from server time: check the laptop clock"
        )
    return device


def check_signature(
    archive: Archive, device: Device, method: str, path_qs: str, headers: dict[str, str],
    body: bytes, skew_s: int, now: float | None = None, record_nonce: bool = True,
) -> Device:
    """`device` (from check_headers) if it signed this very request, never seen before.
    `record_nonce=False`: the caller records the nonce itself, before it acts (a push,
    in the transaction that applies it: pushing_device)."""
    ts = headers[signing.HDR_TIMESTAMP.lower()]
    nonce = headers[signing.HDR_NONCE.lower()]
    try:
        Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
            signing.b64d(headers[signing.HDR_SIGNATURE.lower()]),
            signing.request_message(method, path_qs, ts, nonce, body, device_id=device.id),
        )
    except (InvalidSignature, ValueError):
        raise _unauthorized("bad request signature") from None
    now = time.time() if now is None else now
    if record_nonce and not archive.remember_nonce(device.id, nonce, now, skew_s):
        raise _unauthorized("replayed request (nonce already used)")
    return device


def require_state(device: Device, allowed: tuple[str, ...]) -> Device:
    """Refuse a device whose state is not in `allowed` (revoked, wiped...)."""
    if device.state not in allowed:
        code = "device_wiped" if device.state == "wiped" else "device_revoked"
        raise ApiError(403, code, "this device is no longer allowed: contact your admin")
    return device


async def authenticate(request: Request, archive: Archive, settings: Settings,
                       record_nonce: bool = True) -> Device:
    path_qs = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k.lower(): v for k, v in request.headers.items()}
    device = await run_in_threadpool(check_headers, archive, headers, settings.clock_skew_s)
    # Read whole: server/body_limit.BodyLimit, outermost, has already capped it for
    # this route (one cap, one place), so nothing here counts bytes again.
    body = await request.body()
    device = await run_in_threadpool(
        check_signature, archive, device, request.method, path_qs, headers, body,
        settings.clock_skew_s, None, record_nonce,
    )
    request.state.nonce = headers[signing.HDR_NONCE.lower()]
    return device


async def active_device(request: Request, _: SignatureHeader, archive: ArchiveDep,
                        settings: SettingsDep) -> Device:
    """The signing device, refused unless active: the rule for every route but two."""
    return require_state(await authenticate(request, archive, settings), ("active",))


_FLUSHING = ("active", "revoked", "wipe_pending", "wiped")


@dataclass(frozen=True)
class Pusher:
    """A push's signing device, and its request's nonce, which the push records in the
    transaction that applies it (Archive.push) instead of in one of its own: on SQLite
    that write would wait for the batch ahead of it to commit, and the push could not be
    parsed meanwhile. Its signature is checked here, before its body is parsed."""

    device: Device
    nonce: Nonce


async def pushing_device(request: Request, _: SignatureHeader, archive: ArchiveDep,
                         settings: SettingsDep) -> Pusher:
    """flushing_device for a push, with the nonce left to the push to record."""
    device = require_state(await authenticate(request, archive, settings, record_nonce=False),
                           _FLUSHING)
    return Pusher(device, Nonce(request.state.nonce, time.time(), settings.clock_skew_s))


async def flushing_device(request: Request, _: SignatureHeader, archive: ArchiveDep,
                          settings: SettingsDep) -> Device:
    """Also lets a revoked device through, for its final flush, wipe order and receipt.
    A wiped one too: a copy or a restored backup of the laptop that connects after the
    receipt must still hand over its work and obey the (signed, nonce-bound) order."""
    return require_state(await authenticate(request, archive, settings), _FLUSHING)
