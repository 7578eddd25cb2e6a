"""The archive's staff accounts: adding people, their API tokens, who is calling.

Passwords are hashed with argon2id (argon2-cffi); tokens are random, shown once
and stored as SHA-256 (a token is long and random: no need for a slow hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from schema.enums import StaffRole

from ..archive.engine import UniqueViolation
from ..archive.errors import ArchiveError, Conflict
from . import access, audit
from .access import StaffMember
from .facade import ArchiveBase, rep_of


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffMethods(ArchiveBase):
    def add_staff(self, name: str, role: str, rep: str | None = None,
                  password: str | None = None, by: str = "admin") -> dict[str, Any]:
        """A new staff account. A manager names their own rep (`rep`): their team is
        every rep under it. ArchiveError `invalid_role`, `invalid_name`,
        `rep_required`; Conflict `duplicate_user`."""
        from .staff import hash_password, new_staff_id

        name = name.strip()
        if not name or len(name) > 200:
            raise ArchiveError("invalid_name", "a staff user needs a name of 1-200 characters")
        try:
            role_ = StaffRole(role)
        except ValueError:
            raise ArchiveError("invalid_role", "role must be admin, manager, verifier or hr") from None
        if role_ == StaffRole.manager and not rep:
            raise ArchiveError("rep_required", "a manager needs --rep: the rep row their team "
                               "hangs under (see `fieldvault-server rep list`)")
        digest = hash_password(password) if password is not None else None
        now = self.now()
        with self._write() as s:
            rep_id = rep_of(s, rep)["id"] if rep else None
            if s.staff(name) is not None:
                raise Conflict("duplicate_user", f"a staff user named {name!r} exists")
            row = {"id": new_staff_id(), "name": name, "role": role_.value, "rep_id": rep_id,
                   "password_hash": digest, "created_at": now}
            s.insert_staff(row)
            audit.append(s, now, by, "staff.add", str(row["id"]),
                         {"name": name, "role": role_.value, "rep_id": rep_id})
        return {k: v for k, v in row.items() if k != "password_hash"}

    def create_staff_token(self, user: str, name: str = "api", by: str = "admin") -> str:
        """A bearer token acting as `user` (shown once; only its hash is kept)."""
        token = "fvst_" + secrets.token_urlsafe(32)
        now = self.now()
        with self._write() as s:
            who = access.staff_member(s, user)
            try:
                s.insert_staff_token(_token_hash(token), who.id, name.strip() or "api", now)
            except UniqueViolation:  # 256 random bits: never, but never silently either
                raise Conflict("token_clash", "try again") from None
            audit.append(s, now, by, "staff.token", who.id, {"name": name})
        return token

    def staff_by_token(self, token: str) -> StaffMember | None:
        """The active account a bearer token acts as, or None. Looked up by SHA-256,
        then compared in constant time."""
        digest = _token_hash(token)
        with self._read() as s:
            row = s.staff_token(digest)
        if row is None or row["disabled_at"] or not hmac.compare_digest(row["token_hash"], digest):
            return None
        return StaffMember(row["staff_id"], row["name"], StaffRole(row["role"]), row["rep_id"])

    def staff_member(self, user: str) -> StaffMember:
        """The active account `user` (name or id); NotFound / Forbidden otherwise."""
        with self._read() as s:
            return access.staff_member(s, user)


__all__ = ["StaffMethods"]
