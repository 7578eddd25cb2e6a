"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

from schema.clock import Clock, SystemClock

from . import errors, openapi
from .archive import SQLiteArchive
from .body_limit import SMALL_BODY_BYTES, BodyLimit
from .hr_inbox import InboxWatcher
from .keys import load_or_create_box_key, load_or_create_signing_key
from .metrics import ReplicationProbe
from .routes import enroll, health, hr, lease, sync, wipe
from .settings import Settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Apply scheduled departures (revoke --effective-at) when their time comes."""

    async def loop() -> None:
        while True:
            try:
                await run_in_threadpool(app.state.archive.process_due_revocations)
            except Exception:  # one failure must not end the loop for every later departure
                logging.getLogger("fieldvault.revocation").exception("scheduled departures failed")
            await asyncio.sleep(app.state.settings.revocation_check_s)

    task = asyncio.create_task(loop())
    watcher = None
    if app.state.settings.hr_inbox is not None:
        watcher = InboxWatcher(app.state.archive, app.state.settings.hr_inbox)
        await run_in_threadpool(watcher.start)
    try:
        yield
    finally:
        task.cancel()
        if watcher is not None:
            watcher.stop()


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    app = FastAPI(title="FieldVault", version="0.1.0", lifespan=_lifespan,
                  description="Sync API between reps' agents and the master archive.")
    app.state.settings = settings
    app.state.clock = clock
    app.state.archive = SQLiteArchive(settings.data, clock)
    app.state.signing_key = load_or_create_signing_key(settings.data)
    app.state.box_key = load_or_create_box_key(settings.data)  # opens outbox envelopes
    app.state.replication = ReplicationProbe(settings.data, settings.replica_probe_ttl_s,
                                             settings.replica_max_lag_s)
    errors.install(app)
    openapi.install(app)
    # Level 1: most of the size win on slow mobile links for little CPU.
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=1)
    # Outermost (added last): bodies are capped before anything reads them. Only the
    # batch routes need more than a small body.
    small = min(SMALL_BODY_BYTES, settings.max_body_bytes)
    app.add_middleware(BodyLimit, default=small, limits={
        "/v1/push": settings.max_body_bytes, "/v1/reconcile": settings.max_body_bytes,
        "/v1/final-flush": settings.max_body_bytes})
    app.include_router(enroll.router)
    app.include_router(sync.router)
    app.include_router(wipe.router)
    app.include_router(lease.router)
    app.include_router(hr.router)
    app.include_router(health.router)
    return app
