"""What the server signs with its key, bound to the request's nonce: responses and
wipe orders."""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request, Response

from schema import signing

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
