"""Staff passwords and ids: argon2id hashes (argon2-cffi), never our own crypto."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters

MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    from ..archive.errors import ArchiveError

    if len(password) < MIN_PASSWORD or len(password) > 1024:
        raise ArchiveError("weak_password",
                           f"a password needs {MIN_PASSWORD} to 1024 characters")
    return _HASHER.hash(password)


def new_staff_id() -> str:
    return "staff_" + secrets.token_hex(4)
