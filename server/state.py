"""What the app holds for every request (the archive, clock, settings, keys), as
`Annotated` dependencies. Only this module reads `app.state`; routes and the
authentication declare what they need."""

from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import Depends, Request

from schema.clock import Clock

from .metrics import ReplicationProbe, StaticReplication
from .rules import Archive
from .settings import Settings
from .signed import Signer


def get_archive(request: Request) -> Archive:
    return request.app.state.archive  # type: ignore[no-any-return]


def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_signing_key(request: Request) -> Ed25519PrivateKey:
    return request.app.state.signing_key  # type: ignore[no-any-return]


def get_box_key(request: Request) -> X25519PrivateKey:
    return request.app.state.box_key  # type: ignore[no-any-return]


def get_replication(request: Request) -> ReplicationProbe | StaticReplication:
    return request.app.state.replication  # type: ignore[no-any-return]


def get_signer(request: Request, key: Annotated[Ed25519PrivateKey, Depends(get_signing_key)]
               ) -> Signer:
    return Signer(key, request)


ArchiveDep = Annotated[Archive, Depends(get_archive)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningKey = Annotated[Ed25519PrivateKey, Depends(get_signing_key)]
BoxKey = Annotated[X25519PrivateKey, Depends(get_box_key)]
ResponseSigner = Annotated[Signer, Depends(get_signer)]
ReplicationDep = Annotated[ReplicationProbe | StaticReplication, Depends(get_replication)]
