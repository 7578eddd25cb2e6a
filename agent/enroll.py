"""Enrollment: the device makes its key pairs and trades a one-time code for an identity."""

from __future__ import annotations

import os
import platform
import secrets
from pathlib import Path

from schema.signing import b64d

from . import keystore
from .home import AgentConfig, ensure_home
from .transport import check_url, unsigned_post


class AlreadyEnrolled(Exception):
    pass


def enroll(home: Path, server_url: str, code: str, insecure: bool = False,
           device_name: str | None = None, pin: str | None = None) -> AgentConfig:
    """Enroll this agent home with the server; pins the server's signing key."""
    url = check_url(server_url, insecure)
    existing = AgentConfig.load(home)
    if existing is not None:
        raise AlreadyEnrolled(
            f"{home} is already enrolled as device {existing.device_id}; use another --home"
        )
    ensure_home(home)
    pin = pin if pin is not None else (os.environ.get("FIELDVAULT_PIN") or None)
    sign_pub, box_pub = keystore.create_device_keys(home)
    answer = unsigned_post(url, "/v1/enroll", {
        "code": code.strip(), "device_name": device_name or platform.node()[:200],
        "sign_public_key": sign_pub, "box_public_key": box_pub,
    })
    config = AgentConfig(
        server_url=url, device_id=answer["device_id"], rep_id=answer["rep_id"],
        rep_name=answer["rep_name"], server_sign_public_key=answer["server_sign_public_key"],
        insecure=insecure, archive_epoch=answer.get("archive_epoch", ""),
    )
    # The vault key is born wrapped under the first lease: never in the clear on disk.
    keystore.install_lease(home, config.device_id, b64d(config.server_sign_public_key),
                           answer["sealed_lease"], pin=pin,
                           new_dek=secrets.token_bytes(32))
    config.save(home)
    return config
