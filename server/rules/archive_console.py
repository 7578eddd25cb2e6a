"""The staff console's sessions and the figures and pages it shows, over the same rules
as the staff API: a console page calls these (or the other Archive methods) with
`by=` the signed-in account, and every one authorizes by rules/access.MATRIX.

Sessions: a password sign-in (`verify_password`: its lockout applies) starts one; the
browser holds a random token, the archive only its SHA-256. A session ends at sign-out,
after SESSION_IDLE without a request, or SESSION_MAX after sign-in, whichever is first,
and with the account (a disabled account's sessions stop answering at once).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from schema.clock import iso
from schema.enums import StaffRole

from ..archive.errors import ArchiveError, StorageError
from . import access, audit
from .access import StaffMember
from .facade import ArchiveBase, rep_of, staff_card_filter

SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=12)
# last_seen_at is written at most once a period: a page view is not a queued write.
SESSION_TOUCH_EVERY = timedelta(minutes=1)
PAGE_MAX = 200
DASHBOARD_DAYS = 30


@dataclass(frozen=True)
class ConsoleSession:
    """A live console session: who, the session's public id (CSRF tokens are bound to
    it) and its CSRF key. The browser's token is never kept."""

    who: StaffMember
    id: str
    csrf_key: str
    expires_at: str


def new_secret() -> str:
    """256 random bits (schema.web's, not imported: the archive loads no web stack)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the archive keeps of a session token (as schema.web.token_digest)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _page_size(limit: int) -> int:
    if not 1 <= limit <= PAGE_MAX:
        raise ArchiveError("invalid_limit", f"a page holds 1-{PAGE_MAX} rows")
    return limit


class ConsoleMethods(ArchiveBase):
    # --- sessions -------------------------------------------------------------------

    def console_sign_in(self, name: str, password: str) -> tuple[str, ConsoleSession]:
        """A new session for `name` once `password` is right (Forbidden
        `bad_credentials`, `locked`, `user_disabled` as verify_password says); returns
        the browser's token (shown once) and the session."""
        who = self.verify_password(name, password)  # type: ignore[attr-defined]
        token = new_secret()
        moment = self.clock.now()
        now = iso(moment)
        session = ConsoleSession(who, "cs_" + secrets.token_hex(12), new_secret(),
                                 iso(moment + SESSION_MAX))
        with self._write() as s:
            s.insert_console_session({
                "token_digest": token_digest(token), "id": session.id, "staff_id": who.id,
                "csrf_key": session.csrf_key, "created_at": now,
                "expires_at": session.expires_at, "last_seen_at": now})
            audit.append(s, now, who.actor, "console.sign_in", who.id, {"session": session.id})
        return token, session

    def console_session(self, token: str) -> ConsoleSession | None:
        """The live session the browser's token names, or None (unknown, signed out,
        idle past SESSION_IDLE, older than SESSION_MAX, or its account disabled)."""
        if not token or len(token) > 200:
            return None
        digest = token_digest(token)
        moment = self.clock.now()
        now = iso(moment)
        with self._read() as s:
            row = s.console_session(digest)
        if (row is None or row["disabled_at"] or row["expires_at"] <= now
                or row["last_seen_at"] <= iso(moment - SESSION_IDLE)):
            return None
        since = iso(moment - SESSION_TOUCH_EVERY)
        if row["last_seen_at"] < since:
            try:
                with self._write(serial=False) as s:
                    s.touch_console_session(digest, now, since)
            except StorageError:  # a busy archive: the page still answers; touched next time
                pass
        who = StaffMember(row["staff_id"], row["name"], StaffRole(row["role"]),
                          row["rep_id"])
        return ConsoleSession(who, row["id"], row["csrf_key"], row["expires_at"])

    def console_sign_out(self, token: str) -> bool:
        """End the session (idempotent); whether a live one ended."""
        digest = token_digest(token)
        now = self.now()
        with self._write() as s:
            row = s.console_session(digest)
            if row is None or not s.revoke_console_session(digest, now):
                return False
            audit.append(s, now, f"staff:{row['name']}", "console.sign_out", row["staff_id"],
                         {"session": row["id"]})
        return True

    # --- the manager's pages -----------------------------------------------------------

    def team_dashboard(self, by: str) -> dict[str, Any]:
        """A manager's team at a glance (an admin: everyone's): visits per rep per UTC
        day over the last DASHBOARD_DAYS days, plans submitted/approved/returned over
        those days, the approval queue's size, disputed visits, and customers about to
        return to the pool (warned)."""
        moment = self.clock.now()
        today = moment.date()
        first = today - timedelta(days=DASHBOARD_DAYS - 1)
        with self._read() as s:
            who = access.staff_member(s, by)
            access.authorize(s, who, "report.read")
            team = access.scope(s, who)
            reps = sorted(team) if team is not None else None
            names = s.rep_names()
            per_day = s.visits_per_day(reps, first.isoformat(), (today + timedelta(days=1)).isoformat())
            return {
                "days": [(first + timedelta(days=i)).isoformat() for i in range(DASHBOARD_DAYS)],
                "reps": sorted(((r, names.get(r, r)) for r in (reps if reps is not None else
                                {row["rep_id"] for row in per_day})), key=lambda p: (p[1], p[0])),
                "per_day": per_day,
                "plans": s.plan_counts(reps, first.isoformat(), today.isoformat()),
                "queue": s.count_visits_by_status(reps, "submitted"),
                "disputed": s.count_callbacks(reps, "disputed"),
                "nearing_pool": s.nearing_pool(reps),
            }

    def review_page(self, by: str, after: tuple[str, str] = ("", ""),
                    limit: int = 50) -> list[dict[str, Any]]:
        """One keyset page of the approval queue as `by` may see it (a manager: their
        team's), oldest first, after (started_at, id) `after`."""
        limit = _page_size(limit)
        with self._read() as s:
            who = access.caller(s, by, "visit.review")
            assert who is not None
            team = access.scope(s, who)
            return s.review_page(sorted(team) if team is not None else None, after, limit)

    def disputes_page(self, by: str, limit: int = 100) -> list[dict[str, Any]]:
        """Disputed visits as `by` may see them (a manager: their team's), most recently
        called first."""
        limit = _page_size(limit)
        with self._read() as s:
            who = access.caller(s, by, "disputes.read")
            assert who is not None
            team = access.scope(s, who)
            return s.disputes_page(sorted(team) if team is not None else None, limit)

    def customers_page(self, by: str, owner: str | None = None, grade: str | None = None,
                       in_pool: bool | None = None, locked: bool | None = None,
                       not_visited_days: int | None = None, after: str = "",
                       limit: int = 50) -> list[dict[str, Any]]:
        """One keyset page (by card number, after `after`) of the cards `by` may see (a
        manager: their team's and the pool's), filtered as `find_customers` does."""
        limit = _page_size(limit)
        with self._read() as s:
            where = staff_card_filter(s, by, self.clock.now(), owner, grade, in_pool, locked,
                                      not_visited_days)
            return s.customers_page(where, after, limit)

    def team_reps(self, by: str) -> list[dict[str, Any]]:
        """The reps `by` oversees (a manager: their team; others: every rep), by name."""
        with self._read() as s:
            who = access.staff_member(s, by)
            access.authorize(s, who, "customer.read")
            team = access.scope(s, who)
            return [r for r in s.reps() if team is None or r["id"] in team]

    def rep_visits(self, rep: str, by: str, days: int = 30) -> list[dict[str, Any]]:
        """The rep's visits (void left out) started over the last `days` days, newest
        first, for someone who may read them (a manager: a rep of their team)."""
        moment = self.clock.now()
        with self._read() as s:
            who = access.staff_member(s, by)
            rep_id = rep_of(s, rep)["id"]
            access.authorize(s, who, "visit.read", rep_id)
            rows = s.visits_between([rep_id], iso(moment - timedelta(days=days)),
                                    iso(moment + timedelta(seconds=1)))
            return rows[::-1]

    def rep_of(self, rep: str, by: str) -> dict[str, Any]:
        """The rep row, for someone who may read their records (a manager: their team)."""
        with self._read() as s:
            who = access.staff_member(s, by)
            row = rep_of(s, rep)
            access.authorize(s, who, "customer.read", row["id"])
            return row

    # --- the verifier's page -------------------------------------------------------------

    def callback_throughput(self, by: str) -> dict[str, dict[str, int]]:
        """How many call-backs `by` recorded today, over the last 7 and 30 days (UTC),
        per result."""
        moment = self.clock.now()
        today = date.fromisoformat(iso(moment)[:10])
        out: dict[str, dict[str, int]] = {}
        with self._read() as s:
            who = access.caller(s, by, "callback.work")
            assert who is not None
            for label, days in (("today", 0), ("week", 6), ("month", 29)):
                since = (today - timedelta(days=days)).isoformat()
                out[label] = s.callbacks_by(who.actor, since)
        return out


__all__ = ["SESSION_IDLE", "SESSION_MAX", "ConsoleMethods", "ConsoleSession"]
