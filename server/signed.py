"""What the server signs with its key: responses and wipe orders (bound to the
request's nonce), and key leases (sealed to the device)."""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import Request, Response

from schema import lease as lease_crypto
from schema import sealing, signing
from schema.signing import b64e

from .keys import public_key_b64
from .rules import Archive

# `responses=` of a route answering with `signed_json`: publishes the signature header.
SIGNED_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"headers": {
    signing.HDR_SERVER_SIGNATURE: {
        "required": True,
        "description": (
            "Base64 Ed25519 signature by the server key (pinned at enrollment) over "
            "`FV1-RESP\\n<request FV-Nonce>\\n<status>\\n<hex SHA-256 of the body>`: "
            "the agent refuses an answer that is not signed for its own request."),
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{86}==$"},
    }}}}


class Signer:
    """Signs for one request with the server key. The nonce is read when signing: it is
    the authenticated request's, recorded by the signature check."""

    def __init__(self, key: Ed25519PrivateKey, request: Request) -> None:
        self._key = key
        self._request = request

    def json(self, payload: Any, status: int = 200) -> Response:
        """`payload` as JSON with the signature header over status, body and nonce."""
        body = orjson.dumps(payload)
        sig = self._key.sign(signing.response_message(self._request.state.nonce, status, body))
        return Response(
            content=body, status_code=status, media_type="application/json",
            headers={signing.HDR_SERVER_SIGNATURE: signing.b64e(sig)},
        )

    def wipe_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """`order` with the server's signature over it and this request's nonce: the
        agent obeys only an order signed for its own request."""
        sig = self._key.sign(signing.wipe_order_message(order, self._request.state.nonce))
        return {**order, "signature": signing.b64e(sig)}


def sealed_lease(key: Ed25519PrivateKey, box_key: X25519PrivateKey, archive: Archive,
                 device_id: str, box_public_key: bytes, have_epoch: int | None,
                 backlog: tuple[int, str | None] | None = None) -> dict[str, str]:
    """A new key lease for the device, signed by the server and sealed to its X25519 key
    (enrollment's first lease and every check-in's)."""
    issued = archive.issue_lease(device_id, have_epoch, backlog)
    # The server's X25519 key for outbox envelopes rides in the signed lease, so the
    # agent trusts it exactly as far as the pinned signing key, and agents enrolled
    # before it existed pick it up at their next check-in.
    lease = {**issued["lease"], "server_box_public_key": public_key_b64(box_key)}
    payload = {**issued, "lease": lease,
               "signature": b64e(key.sign(lease_crypto.lease_message(lease)))}
    return sealing.seal(box_public_key, payload, device_id.encode())
