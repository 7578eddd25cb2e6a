"""The archive's staff accounts: people, passwords and lockout, API tokens, who is
calling. The rules are in `staff.py`; who may do what in `access.py`.

Managing accounts is the action `staff.manage` (admins). `by` names the staff user
doing it (the staff API passes the token's account); `by=None` is the operator at the
server's shell (`fieldvault-server user ...` without --by), who holds the archive
anyway and is how the first admin gets made. Either way it is in the audit chain.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, NoReturn

from schema.clock import iso
from schema.enums import StaffRole

from ..archive.engine import UniqueViolation
from ..archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from ..archive.store import Store
from . import access, audit, staff, wipes
from .access import MATRIX, StaffMember
from .facade import ArchiveBase, rep_of


def _manager(s: Store, by: str | None) -> str:
    """The audit actor of an account-management action, once it is allowed."""
    return access.actor(access.caller(s, by, "staff.manage"))


def _account(s: Store, user: str) -> dict[str, Any]:
    row = s.staff(user)
    if row is None:
        raise NotFound("unknown_user", f"no staff user {user!r}: see `fieldvault-server user list`")
    return row


class StaffMethods(ArchiveBase):
    # --- accounts -------------------------------------------------------------------

    def add_staff(self, name: str, role: str, rep: str | None = None,
                  password: str | None = None, by: str | None = None) -> dict[str, Any]:
        """A new staff account. A manager names their own rep (`rep`): their team is
        every rep under it. ArchiveError `invalid_role`, `invalid_name`,
        `rep_required`, `weak_password`; Conflict `duplicate_user`."""
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
        digest = staff.hash_password(password) if password is not None else None
        now = self.now()
        with self._write() as s:
            actor = _manager(s, by)
            rep_id = rep_of(s, rep)["id"] if rep else None
            if s.staff(name) is not None:
                raise Conflict("duplicate_user", f"a staff user named {name!r} exists")
            row = {"id": staff.new_staff_id(), "name": name, "role": role_.value, "rep_id": rep_id,
                   "password_hash": digest, "created_at": now}
            s.insert_staff(row)
            audit.append(s, now, actor, "staff.add", str(row["id"]),
                         {"name": name, "role": role_.value, "rep_id": rep_id})
        return staff.public(row, now)

    def list_staff(self, by: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Every account by name (no hashes), with how many live tokens each has."""
        now = self.now()
        with self._read() as s:
            _manager(s, by)
            return [staff.public(r, now) for r in s.staff_list(limit)]

    def disable_staff(self, user: str, by: str | None = None) -> dict[str, Any]:
        """Disable an account for good: no login, and its tokens are revoked. Idempotent.
        Conflict `last_admin`: the last active admin stays (someone must manage the rest)."""
        now = self.now()
        with self._write() as s:
            actor = _manager(s, by)
            row = _account(s, user)
            if row["disabled_at"] is None:
                staff.refuse_last_admin(s, row)
                s.update_staff({"id": row["id"], "disabled_at": now})
                revoked = s.revoke_staff_tokens(row["id"], None, now)
                audit.append(s, now, actor, "staff.disable", row["id"],
                             {"name": row["name"], "tokens_revoked": revoked})
                row["disabled_at"] = now
            row["tokens"] = 0
            return staff.public(row, now)

    def set_password(self, user: str, password: str, by: str | None = None) -> dict[str, Any]:
        """A new password for `user` (an admin's reset); it also ends a lockout."""
        digest = staff.hash_password(password)
        now = self.now()
        with self._write() as s:
            actor = _manager(s, by)
            row = _account(s, user)
            s.update_staff({"id": row["id"], "password_hash": digest, "failed_logins": 0,
                            "locked_until": None})
            audit.append(s, now, actor, "staff.password", row["id"], {"name": row["name"]})
            row.update(password_hash=digest, locked_until=None)
            return staff.public(row, now)

    def staff_member(self, user: str) -> StaffMember:
        """The active account `user` (name or id); NotFound / Forbidden otherwise."""
        with self._read() as s:
            return access.staff_member(s, user)

    def whoami(self, who: StaffMember) -> dict[str, Any]:
        """What a staff UI needs about its caller: the account and the actions its
        role may take (a manager's are further limited to their team's records)."""
        return {"id": who.id, "name": who.name, "role": who.role.value, "rep_id": who.rep_id,
                "actions": sorted(a for a, roles in MATRIX.items() if who.role in roles)}

    # --- passwords ------------------------------------------------------------------

    def verify_password(self, name: str, password: str) -> StaffMember:
        """The account `name` once `password` is right (a console login).

        Forbidden `bad_credentials` for an unknown name, an account without a password
        and a wrong password alike; `locked` (saying until when) after
        staff.MAX_FAILED_LOGINS wrong ones in a row, for staff.LOCKOUT; `user_disabled`
        for a disabled account with the right password. The argon2 check runs outside
        the write transaction: a login does not hold up the archive's writers."""
        moment = self.clock.now()
        now = iso(moment)
        with self._read() as s:
            row = s.staff(name)
        if row is None or row["password_hash"] is None:
            staff.dummy_check(password)
            raise staff.bad_credentials()
        until = staff.locked_until(row, now)
        if until:  # no check at all while locked: guessing on is pointless
            raise Forbidden("locked", staff.lock_message(row["name"], until))
        if not staff.check_password(row["password_hash"], password):
            self._login_failed(moment, row)
        if row["disabled_at"]:
            raise Forbidden("user_disabled", f"staff user {row['name']!r} is disabled")
        changes = staff.successful_login(row, password)
        if changes:
            with self._write() as s:
                s.update_staff(changes)
        return StaffMember.from_row(row)

    def _login_failed(self, moment: datetime, row: dict[str, Any]) -> NoReturn:
        with self._write() as s:
            until = staff.record_failure(s, moment, row)
        if until:
            raise Forbidden("locked", staff.lock_message(row["name"], until))
        raise staff.bad_credentials()

    # --- tokens -----------------------------------------------------------------------

    def create_staff_token(self, user: str, name: str = "api", by: str | None = None) -> str:
        """A bearer token acting as `user` (shown once; only its hash is kept). Several
        tokens may share a name; revoking the name revokes them all."""
        name = staff.token_name(name)
        token, digest = staff.new_token()
        now = self.now()
        with self._write() as s:
            actor = _manager(s, by)
            who = access.staff_member(s, user)
            try:
                s.insert_staff_token(digest, who.id, name, now)
            except UniqueViolation:  # 256 random bits: never, but never silently either
                raise Conflict("token_clash", "try again") from None
            audit.append(s, now, actor, "staff.token", who.id, {"name": name})
        return token

    def staff_tokens(self, user: str, by: str | None = None) -> list[dict[str, Any]]:
        """The account's tokens, revoked ones too: name, created_at, last_used_at
        (to the minute: see staff.TOKEN_TOUCH_EVERY), revoked_at, expires_at. Never a
        secret."""
        with self._read() as s:
            _manager(s, by)
            return staff.with_expiry(s.staff_tokens_of(_account(s, user)["id"]),
                                     staff.TOKEN_MAX_AGE)

    def revoke_staff_token(self, user: str, token_name: str, by: str | None = None) -> int:
        """Revoke the user's live tokens called `token_name`; how many. NotFound
        `unknown_token` when there is none."""
        now = self.now()
        with self._write() as s:
            actor = _manager(s, by)
            row = _account(s, user)
            count = s.revoke_staff_tokens(row["id"], token_name, now)
            if not count:
                raise NotFound("unknown_token", f"{row['name']} has no live token named "
                               f"{token_name!r}: see `fieldvault-server user tokens {row['name']}`")
            audit.append(s, now, actor, "staff.token_revoke", row["id"],
                         {"name": token_name, "count": count})
        return count

    def staff_by_token(self, token: str) -> StaffMember | None:
        """The active account a bearer token acts as, or None (unknown, revoked, older
        than staff.TOKEN_MAX_AGE, or a disabled account). Looked up by SHA-256, then
        compared in constant time (hmac.compare_digest)."""
        digest = staff.token_hash(token)
        with self._read() as s:
            row = s.staff_token(digest)
        if row is None or row["disabled_at"] or not hmac.compare_digest(row["token_hash"], digest):
            return None
        moment = self.clock.now()
        if staff.expired(row["created_at"], staff.TOKEN_MAX_AGE, moment):
            return None
        since = iso(moment - staff.TOKEN_TOUCH_EVERY)
        if row["last_used_at"] is None or row["last_used_at"] < since:
            # Not serial: it appends to neither the feed nor the audit chain.
            with self._write(serial=False) as s:
                s.touch_staff_token(digest, iso(moment), since)
        return StaffMember(row["staff_id"], row["name"], StaffRole(row["role"]), row["rep_id"])

    # --- what staff may see about reps' access --------------------------------------

    def rep_devices(self, rep: str, by: str) -> list[dict[str, Any]]:
        """A rep's laptops as the archive sees them (state, last seen, wipe); a manager
        only for a rep of their team (Forbidden `outside_team`)."""
        with self._read() as s:
            who = access.staff_member(s, by)
            rep_id = rep_of(s, rep)["id"]
            access.authorize(s, who, "device.read", rep_id)
            return wipes.devices_as_seen(s, self.now(), rep_id, None)


__all__ = ["StaffMethods"]
