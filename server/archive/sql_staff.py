"""Staff accounts and their API tokens, in portable SQL (contracts: store.Staff)."""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase, insert_row


class StaffSql(SqlBase):
    def insert_staff(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "staff", row)

    def staff(self, ref: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM staff WHERE id=? OR name=?", (ref, ref))

    def insert_staff_token(self, token_hash: str, staff_id: str, name: str, at: str) -> None:
        insert_row(self.tx, "staff_tokens", {"token_hash": token_hash, "staff_id": staff_id,
                                             "name": name, "created_at": at})

    def staff_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.tx.one(
            "SELECT t.token_hash, t.staff_id, t.name AS token_name, s.name, s.role, s.rep_id, "
            "s.disabled_at FROM staff_tokens t JOIN staff s ON s.id = t.staff_id "
            "WHERE t.token_hash=? AND t.revoked_at IS NULL", (token_hash,))

    def reps_under(self, rep_id: str) -> list[str]:
        # UNION (not UNION ALL) drops rows already found, so a cycle ends the recursion.
        rows = self.tx.rows(
            "WITH RECURSIVE below(id) AS ("
            " SELECT id FROM reps WHERE manager_id=?"
            " UNION SELECT r.id FROM reps r JOIN below b ON r.manager_id = b.id)"
            " SELECT id FROM below WHERE id <> ?", (rep_id, rep_id))
        return [r["id"] for r in rows]
