"""FastAPI dependencies: the archive, the authenticated device, the clock."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from schema.clock import Clock

from .archive import Archive, Device
from .auth import active_device, flushing_device


def get_archive(request: Request) -> Archive:
    return request.app.state.archive  # type: ignore[no-any-return]


def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


ArchiveDep = Annotated[Archive, Depends(get_archive)]
ClockDep = Annotated[Clock, Depends(get_clock)]
CurrentDevice = Annotated[Device, Depends(active_device)]
# Only for push (a revoked device's final flush) and the wipe receipt.
FlushingDevice = Annotated[Device, Depends(flushing_device)]
