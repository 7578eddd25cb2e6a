"""Staff passwords, lockout and API tokens: the rules behind `archive_staff.py`.

Passwords are argon2id hashes (argon2-cffi with its recommended parameters: never
our own crypto). Tokens are 256 random bits shown once and stored as SHA-256: a
token is long and random, so a slow hash would add nothing but latency.

Lockout: after MAX_FAILED_LOGINS consecutive wrong passwords the account refuses
every login for LOCKOUT, whatever the password; a success resets the count. An
unknown name and a wrong password get the same answer, after the same argon2 work.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from schema.clock import iso

from ..archive.errors import ArchiveError, Conflict, Forbidden
from ..archive.store import Store
from . import audit

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
# A token's last_used_at is written at most once per period: a timestamp to see which
# integrations are alive, not a per-request write queued behind the archive's others.
TOKEN_TOUCH_EVERY = timedelta(minutes=1)
# Bearer tokens stop working this long after they were issued: a token copied into a
# script, a log or a departed colleague's notes is not a key for ever. Integrations
# rotate (issue a new one, revoke the old); HR's is yearly, a staff member's quarterly.
TOKEN_MAX_AGE = timedelta(days=90)
HR_TOKEN_MAX_AGE = timedelta(days=365)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise ArchiveError("weak_password",
                           f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return _HASHER.hash(password)


def check_password(digest: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(digest, password))
    except (VerificationError, InvalidHashError):  # mismatch, or a hash we cannot read
        return False


def dummy_check(password: str) -> None:
    """The argon2 work of a real check, for a name with no password to check: the
    response time must not tell an unknown user from a wrong password."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
    check_password(_DUMMY_HASH, password)


def needs_rehash(digest: str) -> bool:
    """True when the hash was made with other parameters than today's (a library
    upgrade raised them): the next successful login stores a fresh one."""
    try:
        return _HASHER.check_needs_rehash(digest)
    except InvalidHashError:
        return True


def bad_credentials() -> Forbidden:
    return Forbidden("bad_credentials", "wrong user name or password")


def lock_message(name: str, until: str) -> str:
    return (f"{name} is locked after {MAX_FAILED_LOGINS} failed logins until {until} (UTC); "
            "try again then, or ask an admin to set a new password "
            "(`fieldvault-server user password`), which unlocks it")


def locked_until(row: dict[str, Any], now: str) -> str | None:
    """When the account's lockout ends, or None when it is not locked at `now`."""
    until = row.get("locked_until")
    return str(until) if until and until > now else None


def record_failure(store: Store, now: datetime, row: dict[str, Any]) -> str | None:
    """Count a wrong password; lock the account when it is the last one allowed.
    Returns the end of the lockout it started, or None."""
    stamp = iso(now)
    fresh = store.staff(row["id"])
    if fresh is None or locked_until(fresh, stamp):  # locked meanwhile by another attempt
        return None
    if store.add_failed_login(row["id"]) < MAX_FAILED_LOGINS:
        return None
    until = iso(now + LOCKOUT)
    # The count starts again: after the lockout, another full round of attempts.
    store.update_staff({"id": row["id"], "failed_logins": 0, "locked_until": until})
    audit.append(store, stamp, "login", "staff.locked", row["id"],
                 {"name": row["name"], "failures": MAX_FAILED_LOGINS, "until": until})
    return until


def successful_login(row: dict[str, Any], password: str) -> dict[str, Any]:
    """The columns to write after a right password: the failure count and lockout
    reset, a hash made with old parameters replaced. Empty when nothing changes (a
    plain login writes nothing)."""
    changes: dict[str, Any] = {}
    if row["failed_logins"] or row["locked_until"]:
        changes.update(failed_logins=0, locked_until=None)
    if needs_rehash(row["password_hash"]):
        changes["password_hash"] = _HASHER.hash(password)
    return {"id": row["id"], **changes} if changes else {}


def refuse_last_admin(store: Store, row: dict[str, Any]) -> None:
    if row["role"] == "admin" and store.count_active_staff("admin") <= 1:
        raise Conflict("last_admin", f"{row['name']} is the last active admin: add another "
                       "admin first (`fieldvault-server user add --role admin`)")


def public(row: dict[str, Any], now: str) -> dict[str, Any]:
    """An account as listings show it: never the hash; a lockout only while it lasts."""
    return {"id": row["id"], "name": row["name"], "role": row["role"], "rep_id": row["rep_id"],
            "created_at": row["created_at"], "disabled_at": row.get("disabled_at"),
            "locked_until": locked_until(row, now),
            "has_password": bool(row.get("has_password", row.get("password_hash"))),
            "tokens": int(row.get("tokens", 0))}


def new_token() -> tuple[str, str]:
    """(token, its stored hash)."""
    token = "fvst_" + secrets.token_urlsafe(32)
    return token, token_hash(token)


def expires_at(created_at: str, max_age: timedelta) -> str:
    """When a token issued at `created_at` stops working."""
    return iso(datetime.fromisoformat(created_at.replace("Z", "+00:00")) + max_age)


def expired(created_at: str, max_age: timedelta, now: datetime) -> bool:
    """Whether a token issued at `created_at` no longer works at `now`."""
    return expires_at(created_at, max_age) <= iso(now)


# What a refused bearer token is told (staff API and HR API alike): never which of the
# reasons it was, so the answer is no oracle for a guessed or stolen token.
TOKEN_REFUSED = (
    f"unknown, revoked or expired token (a staff token lasts {TOKEN_MAX_AGE.days} days, an "
    f"HR token {HR_TOKEN_MAX_AGE.days}), or a disabled account: ask an admin for a new one")


def with_expiry(rows: list[dict[str, Any]], max_age: timedelta) -> list[dict[str, Any]]:
    """Token listings with each token's `expires_at`."""
    return [{**r, "expires_at": expires_at(r["created_at"], max_age)} for r in rows]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise ArchiveError("invalid_token_name", "a token needs a name of 1-100 characters "
                           "saying what uses it (e.g. erp)")
    return name


def new_staff_id() -> str:
    return "staff_" + secrets.token_hex(4)
