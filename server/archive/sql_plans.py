"""Daily visit plans and their revisions, in portable SQL (contracts: store.Plans)."""

from __future__ import annotations

from typing import Any

import orjson

from .sqlbase import SqlBase, insert_row, update_row


def _encoded(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "items": orjson.dumps(row["items"]).decode()}


def _decoded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r["items"] = orjson.loads(r["items"])
    return rows


class PlanSql(SqlBase):
    def insert_plan(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "plans", _encoded(row))

    def update_plan(self, row: dict[str, Any]) -> None:
        update_row(self.tx, "plans", _encoded(row))

    def plan(self, plan_id: str) -> dict[str, Any] | None:
        row = self.tx.one("SELECT * FROM plans WHERE id=?", (plan_id,))
        return _decoded([row])[0] if row else None

    def plans_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        return _decoded(self._in("SELECT * FROM plans WHERE id IN ({})", ids))

    def plans(self, rep_ids: list[str] | None, status: str | None = None, day: str | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("day", day)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        tail = " ORDER BY day DESC, id" + (" LIMIT ?" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        if rep_ids is None:
            sql = "SELECT * FROM plans" + (" WHERE " + " AND ".join(where) if where else "")
            return _decoded(self.tx.rows(sql + tail, params))
        # A large team is read in chunks, each sorted and cut: the first `limit` of the
        # whole are among the first `limit` of each chunk.
        rows = self._in(" AND ".join(["SELECT * FROM plans WHERE rep_id IN ({})", *where]) + tail,
                        rep_ids, tuple(params))
        rows.sort(key=lambda r: r["id"])
        rows.sort(key=lambda r: r["day"], reverse=True)
        return _decoded(rows[:limit] if limit is not None else rows)

    def insert_plan_revision(self, row: dict[str, Any], author: str, at: str) -> None:
        self.tx.execute(
            "INSERT INTO plan_revisions (plan_id, rev, snapshot, author, at) VALUES (?,?,?,?,?)",
            (row["id"], row["rev"], orjson.dumps(row).decode(), author, at))

    def plan_revisions(self, plan_id: str) -> list[dict[str, Any]]:
        rows = self.tx.rows("SELECT * FROM plan_revisions WHERE plan_id=? ORDER BY rev",
                            (plan_id,))
        for r in rows:
            r["snapshot"] = orjson.loads(r["snapshot"])
        return rows
