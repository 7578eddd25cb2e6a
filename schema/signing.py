"""Canonical strings that agent and server sign, so both sides agree byte for byte.

A request signature covers method, path with query, the device id, timestamp,
nonce and the SHA-256 of the exact body bytes sent (the device id is signed so a
signature can never be presented as another device's). A response signature covers the request
nonce (binding it to that request, so it cannot be replayed to another), the
status code and the body digest.
"""

from __future__ import annotations

import base64
import hashlib

HDR_DEVICE = "FV-Device"
HDR_TIMESTAMP = "FV-Timestamp"
HDR_NONCE = "FV-Nonce"
HDR_SIGNATURE = "FV-Signature"
HDR_SERVER_SIGNATURE = "FV-Server-Signature"
MAX_CLOCK_SKEW_S = 300


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_message(method: str, path_qs: str, timestamp: str, nonce: str, body: bytes, *,
                    device_id: str) -> bytes:
    return "\n".join(
        ["FV2-REQ", method.upper(), path_qs, device_id, timestamp, nonce, body_digest(body)]
    ).encode()


def response_message(nonce: str, status: int, body: bytes) -> bytes:
    return "\n".join(["FV1-RESP", nonce, str(status), body_digest(body)]).encode()


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _canonical(payload: dict[str, object]) -> bytes:
    import orjson

    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def wipe_order_message(order: dict[str, object], nonce: str) -> bytes:
    """A wipe order is bound to the request that fetched it: replaying an old one fails."""
    return b"FV1-WIPE\n" + _canonical(order) + b"\n" + nonce.encode()


def wipe_receipt_message(receipt: dict[str, object]) -> bytes:
    return b"FV1-RECEIPT\n" + _canonical(receipt)
