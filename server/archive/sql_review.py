"""What waits for a person, in portable SQL (contracts: store.Review): visits waiting for
review (拜访记录审核), the call-back queue and its figures (电话回访), disputes, and
deciding quarantined operations and conflicts."""

from __future__ import annotations

from typing import Any

import orjson

from .sqlbase import SqlBase, insert_row, with_limit

# A visit as the people who review and call it back need it: who, which customer
# (and how to reach them), when, why and what happened.
_VISIT_VIEW = (
    "SELECT v.id, v.rev, v.rep_id, r.name AS rep_name, v.customer_id, c.name AS customer_name,"
    " c.card_no, c.phone, c.decision_maker, v.started_at, v.ended_at, v.purpose, v.summary,"
    " v.outcome, v.status, v.review_comment, v.reviewed_by, v.reviewed_at, v.callback,"
    " v.callback_reason, v.callback_note, v.callback_by, v.callback_at, v.updated_at"
    " FROM visits v JOIN reps r ON r.id = v.rep_id JOIN customers c ON c.id = v.customer_id")

# The reps under one rep, transitively (that rep not included): a manager's team. UNION
# (not UNION ALL) drops rows already found, so a cycle in the tree ends the recursion.
_TEAM = ("{column} IN (WITH RECURSIVE below(id) AS ("
         " SELECT id FROM reps WHERE manager_id=?"
         " UNION SELECT r2.id FROM reps r2 JOIN below b ON r2.manager_id = b.id)"
         " SELECT id FROM below WHERE id <> ?)")


def _where(conditions: list[str], params: list[Any], under: str | None,
           column: str = "v.rep_id") -> tuple[str, list[Any]]:
    if under is not None:
        conditions = [*conditions, _TEAM.format(column=column)]
        params = [*params, under, under]
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


class ReviewSql(SqlBase):
    # --- quarantine and conflicts -------------------------------------------------

    def insert_quarantine(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "quarantine", row)

    def is_quarantined(self, entity_id: str) -> bool:
        return self.tx.one("SELECT 1 AS one FROM quarantine WHERE entity_id=? LIMIT 1",
                           (entity_id,)) is not None

    def quarantined(self, limit: int | None = None,
                    open_only: bool = False) -> list[dict[str, Any]]:
        where = " WHERE decision IS NULL" if open_only else ""
        rows = self.tx.rows(*with_limit(f"SELECT * FROM quarantine{where} ORDER BY id", (), limit))
        for r in rows:
            r["payload"] = orjson.loads(r["payload"])
        return rows

    def count_quarantined(self, rep_id: str | None = None) -> int:
        if rep_id is None:
            return int(self.tx.scalar("SELECT count(*) FROM quarantine"))
        return int(self.tx.scalar("SELECT count(*) FROM quarantine WHERE rep_id=?", (rep_id,)))

    def insert_conflict(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "conflicts", row)

    def conflicts(self, limit: int | None = None, under: str | None = None,
                  open_only: bool = False) -> list[dict[str, Any]]:
        where, params = _where(["k.resolved_at IS NULL"] if open_only else [], [], under,
                               "k.rep_id")
        rows = self.tx.rows(*with_limit(
            "SELECT k.*, c.name AS customer_name, c.card_no FROM conflicts k "
            "JOIN customers c ON c.id = k.customer_id" + where + " ORDER BY k.id", params, limit))
        for r in rows:
            r["server_value"] = orjson.loads(r["server_value"])
            r["rep_value"] = orjson.loads(r["rep_value"])
        return rows

    # --- visits waiting for review and call-back ------------------------------------

    def visits_to_review(self, under: str | None = None,
                         limit: int | None = None) -> list[dict[str, Any]]:
        where, params = _where(["v.status='submitted'"], [], under)
        return self.tx.rows(*with_limit(_VISIT_VIEW + where + " ORDER BY v.started_at, v.id",
                                        params, limit))

    def callback_queue(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.tx.rows(*with_limit(
            _VISIT_VIEW + " WHERE v.callback='pending' AND v.status <> 'void'"
            " ORDER BY v.started_at, v.id", (), limit))

    def disputed_visits(self, under: str | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
        where, params = _where(["v.callback='disputed'"], [], under)
        return self.tx.rows(*with_limit(_VISIT_VIEW + where + " ORDER BY v.callback_at, v.id",
                                        params, limit))

    def callback_counts(self, under: str | None = None,
                        rep_id: str | None = None) -> list[dict[str, Any]]:
        conditions, params = ["v.callback IS NOT NULL"], []
        if rep_id is not None:
            conditions.append("v.rep_id=?")
            params.append(rep_id)
        where, params = _where(conditions, params, under)
        return self.tx.rows(
            "SELECT v.rep_id, r.name AS rep_name,"
            " sum(CASE WHEN v.callback='pending' THEN 1 ELSE 0 END) AS pending,"
            " sum(CASE WHEN v.callback='verified' THEN 1 ELSE 0 END) AS verified,"
            " sum(CASE WHEN v.callback='disputed' THEN 1 ELSE 0 END) AS disputed"
            " FROM visits v JOIN reps r ON r.id = v.rep_id" + where
            + " GROUP BY v.rep_id, r.name ORDER BY r.name, v.rep_id", params)

    def callback_throughput(self, by: str | None = None) -> list[dict[str, Any]]:
        conditions, params = ["callback_by IS NOT NULL"], []
        if by is not None:
            conditions.append("callback_by=?")
            params.append(by)
        return self.tx.rows(
            "SELECT callback_by AS by, substr(callback_at, 1, 10) AS day, count(*) AS calls"
            " FROM visits WHERE " + " AND ".join(conditions)
            + " GROUP BY callback_by, substr(callback_at, 1, 10) ORDER BY 2, 1", params)

    def held_op(self, held_id: int) -> dict[str, Any] | None:
        row = self.tx.one("SELECT * FROM quarantine WHERE id=?", (held_id,))
        if row is not None:
            row["payload"] = orjson.loads(row["payload"])
        return row

    def decide_held_op(self, held_id: int, decision: str, by: str, reason: str, at: str) -> bool:
        return self.tx.execute(
            "UPDATE quarantine SET decision=?, decided_by=?, decision_reason=?, reviewed_at=?"
            " WHERE id=? AND decision IS NULL", (decision, by, reason, at, held_id)) == 1

    def conflict(self, conflict_id: int) -> dict[str, Any] | None:
        row = self.tx.one("SELECT * FROM conflicts WHERE id=?", (conflict_id,))
        if row is not None:
            row["server_value"] = orjson.loads(row["server_value"])
            row["rep_value"] = orjson.loads(row["rep_value"])
        return row

    def resolve_conflict(self, conflict_id: int, resolution: str, by: str, at: str) -> bool:
        return self.tx.execute(
            "UPDATE conflicts SET resolution=?, resolved_by=?, resolved_at=?"
            " WHERE id=? AND resolved_at IS NULL", (resolution, by, at, conflict_id)) == 1
