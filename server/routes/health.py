"""Liveness for load balancers and the demo; reveals nothing about the archive's content."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import ArchiveDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(archive: ArchiveDep) -> dict:
    archive.ping()
    return {"status": "ok", "archive_epoch": archive.epoch}
