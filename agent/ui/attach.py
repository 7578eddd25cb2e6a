"""Attachments in the local UI: files uploaded with the visit form or waiting in the
inbox, stored encrypted in the vault (agent/attachments.py); a visit's photos shown
from the vault through this app (behind its session, like every page), never written
to disk in plaintext; and the inbox watcher that `fieldvault run` starts.

Starlette spools an uploaded file over 1 MiB to a temporary file on disk: the UI
process raises that threshold above its own body cap, so an upload stays in memory
(the body is held whole already, for its CSRF check) until it is in the vault.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser

from schema import web
from schema.evidence import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, SHA256_HEX

from .. import attachments, inbox
from ..errors import StoreError
from .context import UI, _, ui_of

# One form's files: a few photos and a signed form, each at most 20 MB.
MAX_FILES_PER_FORM = 5
BODY_MAX_BYTES = MAX_FILES_PER_FORM * MAX_ATTACHMENT_BYTES + 1024 * 1024
MultiPartParser.spool_max_size = BODY_MAX_BYTES + 1
FILE_FIELD = "files"
PICK_FIELD = "attach"
# What the browser may show inline; anything else is offered as a download.
INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp",
                          "application/pdf"})
THUMBNAIL_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

router = APIRouter()


def install(app: FastAPI) -> None:
    """The upload cap (refused before the body is read) and the attachment route."""

    @app.middleware("http")
    async def cap(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                  ) -> Response:
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > BODY_MAX_BYTES:
            message = ui_of(request).gettext(request)(_(
                "Too much at once: attach at most 5 files of 20 MB each per save."))
            return JSONResponse({"error": "body_too_large", "message": message},
                                status_code=413,
                                headers={**web.SECURITY_HEADERS, "connection": "close"})
        return await call_next(request)

    app.include_router(router)


def limits() -> dict[str, int]:
    return {"max_mb": MAX_ATTACHMENT_BYTES // (1024 * 1024), "max_files": MAX_FILES_PER_FORM}


def offered(ui: UI) -> list[dict[str, Any]]:
    """Files in the vault waiting for a visit (dropped in the inbox or uploaded before)."""
    try:
        with ui.store() as store:
            return attachments.inbox(store)
    except Exception:  # a vault that does not open: the page says so elsewhere
        return []


def of_visit(ui: UI, visit_id: str) -> list[dict[str, Any]]:
    with ui.store() as store:
        rows = attachments.of_visit(store.conn, visit_id)
    for row in rows:
        row["thumbnail"] = row["content_type"] in THUMBNAIL_TYPES and row["downloaded"]
    return rows


async def from_form(store: attachments.Store, form: Any) -> list[str]:
    """The sha256 of the files posted with the visit form (stored in the vault now) and
    of the inbox files ticked for it. StoreError naming the limit for a file too big."""
    files = [f for f in form.getlist(FILE_FIELD) if isinstance(f, UploadFile) and f.filename]
    if len(files) > MAX_FILES_PER_FORM:
        raise StoreError(f"attach at most {MAX_FILES_PER_FORM} files at once "
                         f"({len(files)} chosen)")
    shas = [str(v) for v in form.getlist(PICK_FIELD) if SHA256_HEX.fullmatch(str(v))]
    for upload in files:
        name = attachments.clean_name(upload.filename or "")
        if upload.size is not None:  # refused before a byte is read into the vault
            attachments.check_size(upload.size, name)
        data = await upload.read(MAX_ATTACHMENT_BYTES + 1)
        attachments.check_size(len(data), name)
        ref = attachments.add_bytes(store, data, upload.filename or "", upload.content_type)
        shas.append(ref["sha256"])
    if len(set(shas)) > MAX_ATTACHMENTS:
        raise StoreError(f"a visit takes at most {MAX_ATTACHMENTS} attachments")
    return shas


@router.get("/visits/{visit_id}/attachments/{sha256}")
def attachment(request: Request, visit_id: str, sha256: str) -> Response:
    """One of a visit's attachments, read from the vault into this answer only."""
    ui = ui_of(request)
    if not SHA256_HEX.fullmatch(sha256):
        return JSONResponse({"error": "not_found", "message": "no such attachment"}, 404)
    with ui.store() as store:
        named = {a["sha256"] for a in attachments.of_visit(store.conn, visit_id)}
        try:
            if sha256 not in named:
                raise StoreError("no such attachment on this visit")
            ref, data = attachments.read(store, sha256)
        except StoreError as exc:
            return JSONResponse({"error": "not_found", "message": str(exc)}, 404)
    kind = ref["content_type"] if ref["content_type"] in INLINE_TYPES else "application/octet-stream"
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_"
                   for ch in ref["name"])[:100] or "attachment"
    return Response(data, media_type=kind,
                    headers={"content-disposition": f'{disposition}; filename="{safe}"'})


class InboxService:
    """The inbox watcher for `fieldvault run` (a Runner service): files dropped into the
    inbox folder go into the vault under the UI's own store lock."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self.watcher: inbox.InboxWatcher | None = None

    def scan(self) -> None:
        if self.ui.state() != "active":
            return
        with self.ui.store() as store:
            inbox.scan(store, self.ui.home)

    def start(self) -> None:
        self.watcher = inbox.InboxWatcher(self.ui.home, self.scan)
        self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
