"""Push batches stored before their rules run (contracts: store.Received)."""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase

_COLUMNS = "id, device_id, first_seq, last_seq, op_count, received_at, body"


class ReceivedSql(SqlBase):
    def insert_received(self, device_id: str, first_seq: int, last_seq: int, op_count: int,
                        body: str, received_at: str) -> int:
        return int(self.tx.scalar(
            "INSERT INTO push_inbox (device_id, first_seq, last_seq, op_count, body, received_at)"
            " VALUES (?,?,?,?,?,?) RETURNING id",
            (device_id, first_seq, last_seq, op_count, body, received_at)))

    def oldest_received(self) -> dict[str, Any] | None:
        return self.tx.one(f"SELECT {_COLUMNS} FROM push_inbox ORDER BY id LIMIT 1")

    def received_of(self, device_id: str) -> list[dict[str, Any]]:
        return self.tx.rows(f"SELECT {_COLUMNS} FROM push_inbox WHERE device_id=? ORDER BY id",
                            (device_id,))

    def received_ranges(self, device_id: str) -> list[tuple[int, int]]:
        return [(int(r[0]), int(r[1])) for r in self.tx.tuples(
            "SELECT first_seq, last_seq FROM push_inbox WHERE device_id=? ORDER BY id",
            (device_id,))]

    def delete_received(self, received_id: int) -> None:
        self.tx.execute("DELETE FROM push_inbox WHERE id=?", (received_id,))

    def received_backlog(self) -> dict[str, Any]:
        row = self.tx.one("SELECT count(*) AS batches, coalesce(sum(op_count), 0) AS ops,"
                          " min(received_at) AS oldest_at, max(received_at) AS newest_at"
                          " FROM push_inbox")
        assert row is not None
        return {"batches": int(row["batches"]), "ops": int(row["ops"]),
                "oldest_at": row["oldest_at"], "newest_at": row["newest_at"]}
