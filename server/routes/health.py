"""Liveness, replication health and Prometheus metrics. Nothing here reveals
customer data, so these routes need no device signature."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..deps import ArchiveDep, ReplicationDep
from ..metrics import exposition as metrics_text

router = APIRouter(tags=["health"])


class ReplicationStatus(BaseModel):
    """server/replication.py `backup_status`: the replica as Litestream last saw it.
    Open to new keys: a field added there must not turn the health check into a 500."""

    model_config = ConfigDict(extra="allow")

    healthy: bool
    errors: list[str]
    replica: str | None = Field(description="Replica URL without credentials, `none`, or null")
    txid: int | None = None
    replicated_at: str | None = None
    ltx_files: int | None = None
    local_txid: int | None = None
    lag_txns: int | None = None
    lag_seconds: float | None = Field(default=None, description=(
        "How long the oldest transaction not yet in the replica has waited"))
    seconds_since_replicated: float | None = None


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded"]
    archive_epoch: str
    replication: ReplicationStatus


@router.get("/healthz", response_model=Health)
async def healthz(archive: ArchiveDep, replication_probe: ReplicationDep) -> dict:
    """`ok` when the archive answers and replication is healthy, else `degraded`."""
    epoch = await run_in_threadpool(archive.current_epoch)  # raises when the archive is down
    replication = await run_in_threadpool(replication_probe.status)
    healthy = bool(replication.get("healthy"))
    return {"status": "ok" if healthy else "degraded", "archive_epoch": epoch,
            "replication": replication}


@router.get("/metrics")
async def metrics(replication_probe: ReplicationDep) -> Response:
    await run_in_threadpool(replication_probe.status)
    return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)
