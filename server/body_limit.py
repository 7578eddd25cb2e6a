"""One cap on every request body, applied before anything parses or authenticates it.

An unauthenticated client must not be able to make the server hold a large body in
memory: a declared Content-Length over the cap is refused before a byte is read, and
a streamed (chunked) body is counted as it arrives and refused as soon as it passes
the cap. Only push, reconcile and final-flush carry batches; every other route gets
a small cap.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.validation import ASCII_INT

from .errors import error_response

SMALL_BODY_BYTES = 64 * 1024
_log = logging.getLogger("fieldvault.http")


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-stream; an HTTPException so FastAPI's own body reader
    passes it on instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over {limit} bytes")
        self.limit = limit


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                  message: str) -> None:
    """The usual error body, and hang up: the rest of the body is never read."""
    await error_response(status, code, message, headers={"connection": "close"})(
        scope, receive, send)


class BodyLimit:
    """ASGI middleware: `limits` maps a path to its cap; other paths get `default`."""

    def __init__(self, app: ASGIApp, default: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        for name, value in scope["headers"]:
            if name == b"content-length":
                text = value.decode("latin-1")
                if not ASCII_INT.fullmatch(text):
                    await _refuse(scope, receive, send, 400, "bad_request",
                                  "Content-Length is not a number")
                    return
                if int(text) > limit:
                    await _refuse(scope, receive, send, 413, "body_too_large",
                                  f"request body is over {limit} bytes")
                    return
        received = 0
        started = False
        # A request with a body the app answered without reading it whole (e.g. a 401
        # on its headers): close the connection after the answer, instead of letting
        # the server read and discard the rest of a stranger's upload to keep it alive.
        unread = any(name in (b"content-length", b"transfer-encoding")
                     and value not in (b"0", b"") for name, value in scope["headers"])

        async def counted() -> Message:
            nonlocal received, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                unread = unread and message.get("more_body", False)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:
            if not started:
                await _refuse(scope, receive, send, 413, "body_too_large", str(exc.detail))
        except ClientDisconnect:
            # The client went away mid-body: nobody is left to answer, and it is not a
            # server fault worth a traceback.
            _log.info("client disconnected before sending the whole body: %s", scope["path"])
