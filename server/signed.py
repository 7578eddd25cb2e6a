"""Responses signed by the server key, bound to the request's nonce."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from schema import signing


def signed_json(request: Request, payload: Any, status: int = 200) -> Response:
    body = orjson.dumps(payload)
    key = request.app.state.signing_key
    sig = key.sign(signing.response_message(request.state.nonce, status, body))
    return Response(
        content=body, status_code=status, media_type="application/json",
        headers={signing.HDR_SERVER_SIGNATURE: signing.b64e(sig)},
    )
