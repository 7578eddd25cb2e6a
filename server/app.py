"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

from schema.clock import Clock, SystemClock

from . import console, errors, openapi
from .applier import Applier
from .archive.engine import JobLock
from .body_limit import SMALL_BODY_BYTES, BodyLimit
from .hr_inbox import InboxWatcher
from .keys import load_or_create_box_key, load_or_create_signing_key
from .metrics import ReplicationProbe, StaticReplication
from .routes import (
    attachments,
    enroll,
    health,
    hr,
    lease,
    ownership,
    pool,
    staff_callbacks,
    staff_customers,
    staff_jobs,
    staff_ops,
    staff_plans,
    staff_reports,
    staff_review,
    staff_users,
    staff_visits,
    sync,
    wipe,
)
from .rules import Archive, open_archive
from .settings import Settings

log = logging.getLogger("fieldvault.jobs")

# The name of the lock that elects the one process (of all workers, on every host)
# running background jobs: scheduled departures and the HR inbox.
JOBS_LOCK = "jobs"


class Jobs:
    """Background jobs, run by exactly one process: each worker tries the archive's job
    lock now and then; the holder runs the jobs until it stops (a crashed holder's
    lock is released by its database session or the kernel, and another takes over)."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.archive = archive
        self.settings = settings
        self.stack = contextlib.ExitStack()
        self.lock: JobLock | None = None
        self.watcher: InboxWatcher | None = None

    def try_lead(self) -> bool:
        if self.lock is not None and not self.lock.alive():
            log.warning("lost the background-jobs lock; another process may take over")
            self.step_down()
        if self.lock is None:
            lock = self.stack.enter_context(self.archive.engine.job_lock(JOBS_LOCK))
            if not lock:
                self.step_down()
                return False
            self.lock = lock
            if self.settings.hr_inbox is not None:
                self.watcher = InboxWatcher(self.archive, self.settings.hr_inbox)
                self.watcher.start()
        return True

    def step_down(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.lock = None
        self.stack.close()
        self.stack = contextlib.ExitStack()

    def run_once(self) -> None:
        import time

        from .rules.pool import JOBS_EVERY_S

        if not self.try_lead():
            return
        # Departures come due to the minute and cost nothing when none is due; the
        # pool's rules count in days and scan the cards, so every job runs only every
        # JOBS_EVERY_S (the first round at once).
        if time.monotonic() >= getattr(self, "all_jobs_due", 0.0):
            self.archive.run_jobs()
            self.all_jobs_due = time.monotonic() + JOBS_EVERY_S
        else:
            self.archive.process_due_revocations()
            # One batch a round (~0.4 s of CPU every revocation_check_s): pushed visits'
            # signatures are verified within minutes without starving the API.
            self.archive.check_evidence()

    def stop(self) -> None:
        self.step_down()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    jobs = Jobs(app.state.archive, app.state.settings)

    async def loop() -> None:
        while True:
            try:
                await run_in_threadpool(jobs.run_once)
            except Exception:  # one failure must not end the loop for every later departure
                log.exception("background jobs failed")
            await asyncio.sleep(app.state.settings.revocation_check_s)

    # The first round before serving: a lone server picks up its HR inbox at once.
    try:
        await run_in_threadpool(jobs.try_lead)
    except Exception:  # the loop tries again; the API must still come up
        log.exception("background jobs could not start")
    task = asyncio.create_task(loop())
    settings = app.state.settings
    applier = Applier(app.state.archive, settings.apply_quiet_s, settings.apply_max_wait_s)
    applier.start()
    try:
        yield
    finally:
        task.cancel()
        await run_in_threadpool(applier.stop)
        await run_in_threadpool(jobs.stop)
        app.state.archive.close()


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    app = FastAPI(title="FieldVault", version="0.1.0", lifespan=_lifespan,
                  description="Sync API between reps' agents and the master archive.")
    app.state.settings = settings
    app.state.clock = clock
    archive = open_archive(settings.data, clock, settings.archive_url)
    app.state.archive = archive
    app.state.signing_key = load_or_create_signing_key(settings.data)
    app.state.box_key = load_or_create_box_key(settings.data)  # opens outbox envelopes
    if archive.engine.kind == "sqlite":
        app.state.replication = ReplicationProbe(settings.data, settings.replica_probe_ttl_s,
                                                 settings.replica_max_lag_s)
    else:
        app.state.replication = StaticReplication(archive.engine.kind)
    errors.install(app)
    openapi.install(app)
    # Level 1: most of the size win on slow mobile links for little CPU.
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=1)
    # Outermost (added last): bodies are capped before anything reads them. Only the
    # batch routes need more than a small body.
    small = min(SMALL_BODY_BYTES, settings.max_body_bytes)
    app.add_middleware(BodyLimit, default=small, limits={
        "/v1/push": settings.max_body_bytes, "/v1/reconcile": settings.max_body_bytes,
        "/v1/final-flush": settings.max_body_bytes,
        attachments.UPLOAD_PATH: attachments.UPLOAD_BODY_BYTES,
        wipe.SEALED_UPLOAD_PATH: wipe.SEALED_CHUNK_BODY_BYTES,
        sync.VERDICTS_PATH: sync.VERDICTS_BODY_BYTES})
    app.include_router(enroll.router)
    app.include_router(sync.router)
    app.include_router(wipe.router)
    app.include_router(lease.router)
    app.include_router(hr.router)
    app.include_router(health.router)
    app.include_router(pool.router)
    app.include_router(ownership.router)
    app.include_router(attachments.router)
    for staff in (staff_users, staff_visits, staff_callbacks, staff_review, staff_customers,
                  staff_plans, staff_reports, staff_jobs, staff_ops):
        app.include_router(staff.router)
    console.install(app)  # the staff console at /console (server/console/README.md)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for `serve --workers N`: each worker process builds its own
    app from FIELDVAULT_* variables."""
    return create_app(Settings())
