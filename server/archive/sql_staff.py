"""Staff accounts and their API tokens, in portable SQL (contracts: store.Staff)."""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase, insert_row, update_row, with_limit


class StaffSql(SqlBase):
    def insert_staff(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "staff", row)

    def staff(self, ref: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM staff WHERE id=? OR name=?", (ref, ref))

    def staff_list(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.tx.rows(*with_limit(
            "SELECT s.id, s.name, s.role, s.rep_id, s.created_at, s.disabled_at, s.locked_until, "
            "s.failed_logins, CASE WHEN s.password_hash IS NULL THEN 0 ELSE 1 END AS has_password, "
            "(SELECT COUNT(*) FROM staff_tokens t WHERE t.staff_id = s.id "
            " AND t.revoked_at IS NULL) AS tokens "
            "FROM staff s ORDER BY s.name", (), limit))

    def count_active_staff(self, role: str) -> int:
        return int(self.tx.scalar(
            "SELECT COUNT(*) FROM staff WHERE role=? AND disabled_at IS NULL", (role,)))

    def update_staff(self, row: dict[str, Any]) -> None:
        update_row(self.tx, "staff", row)

    def add_failed_login(self, staff_id: str) -> int:
        return int(self.tx.scalar(
            "UPDATE staff SET failed_logins = failed_logins + 1 WHERE id=? RETURNING failed_logins",
            (staff_id,)))

    def insert_staff_token(self, token_hash: str, staff_id: str, name: str, at: str) -> None:
        insert_row(self.tx, "staff_tokens", {"token_hash": token_hash, "staff_id": staff_id,
                                             "name": name, "created_at": at})

    def staff_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.tx.one(
            "SELECT t.token_hash, t.staff_id, t.name AS token_name, t.created_at, t.last_used_at, "
            "s.name, s.role, s.rep_id, s.disabled_at "
            "FROM staff_tokens t JOIN staff s ON s.id = t.staff_id "
            "WHERE t.token_hash=? AND t.revoked_at IS NULL", (token_hash,))

    def staff_tokens_of(self, staff_id: str) -> list[dict[str, Any]]:
        return self.tx.rows(
            "SELECT name, created_at, last_used_at, revoked_at FROM staff_tokens "
            "WHERE staff_id=? ORDER BY created_at, name", (staff_id,))

    def revoke_staff_tokens(self, staff_id: str, name: str | None, at: str) -> int:
        if name is None:
            return self.tx.execute("UPDATE staff_tokens SET revoked_at=? "
                                   "WHERE staff_id=? AND revoked_at IS NULL", (at, staff_id))
        return self.tx.execute("UPDATE staff_tokens SET revoked_at=? "
                               "WHERE staff_id=? AND name=? AND revoked_at IS NULL",
                               (at, staff_id, name))

    def touch_staff_token(self, token_hash: str, at: str, unless_after: str) -> None:
        self.tx.execute("UPDATE staff_tokens SET last_used_at=? WHERE token_hash=? "
                        "AND (last_used_at IS NULL OR last_used_at < ?)",
                        (at, token_hash, unless_after))

    def reps_under(self, rep_id: str) -> list[str]:
        # UNION (not UNION ALL) drops rows already found, so a cycle ends the recursion.
        rows = self.tx.rows(
            "WITH RECURSIVE below(id) AS ("
            " SELECT id FROM reps WHERE manager_id=?"
            " UNION SELECT r.id FROM reps r JOIN below b ON r.manager_id = b.id)"
            " SELECT id FROM below WHERE id <> ?", (rep_id, rep_id))
        return [r["id"] for r in rows]
