"""Enrollment codes: one-time, read aloud and typed by hand; only their hash is kept."""

from __future__ import annotations

import hashlib
import secrets

# Crockford base32 without look-alikes: codes are read aloud and typed by hand.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


def hash_code(code: str) -> str:
    normalized = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))
