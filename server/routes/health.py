"""Liveness, replication health and Prometheus metrics. Nothing here reveals
customer data, so these routes need no device signature."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ..deps import ArchiveDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request, archive: ArchiveDep) -> dict:
    """`ok` when the archive answers and replication is healthy, else `degraded`."""
    await run_in_threadpool(archive.ping)
    replication = await run_in_threadpool(request.app.state.replication.status)
    healthy = bool(replication.get("healthy"))
    return {"status": "ok" if healthy else "degraded", "archive_epoch": archive.epoch,
            "replication": replication}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    await run_in_threadpool(request.app.state.replication.status)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
