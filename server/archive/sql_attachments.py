"""Attachments' rows and visit evidence, in portable SQL (contracts: store.Attachments).
The bytes are not here: they are in the blob folder (server/blobs.py)."""

from __future__ import annotations

from typing import Any

import orjson

from .sqlbase import SqlBase, insert_sql

_REF = "va.sha256, va.name, a.size, a.content_type"


class AttachmentSql(SqlBase):
    def attachment(self, sha256: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM attachments WHERE sha256=?", (sha256,))

    def insert_attachment(self, row: dict[str, Any]) -> None:
        self.tx.execute(
            "INSERT INTO attachments (sha256, size, content_type, stored_at, first_device_id) "
            "VALUES (?,?,?,?,?) ON CONFLICT(sha256) DO NOTHING",
            (row["sha256"], row["size"], row["content_type"], row["stored_at"],
             row["first_device_id"]))

    def attachments_present(self, shas: list[str]) -> set[str]:
        return {r["sha256"] for r in self._in(
            "SELECT sha256 FROM attachments WHERE sha256 IN ({})", shas)}

    def link_visit_attachments(self, visit_id: str, rev: int, refs: list[dict[str, Any]]) -> None:
        for ref in refs:
            self.tx.execute(
                "INSERT INTO visit_attachments (visit_id, sha256, name, rev) VALUES (?,?,?,?) "
                "ON CONFLICT(visit_id, sha256) DO NOTHING",
                (visit_id, ref["sha256"], ref["name"], rev))

    def attachments_of_visits(self, visit_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self._in(
                f"SELECT va.visit_id, {_REF} FROM visit_attachments va "  # noqa: S608
                "JOIN attachments a ON a.sha256 = va.sha256 WHERE va.visit_id IN ({}) "
                "ORDER BY va.visit_id, va.name, va.sha256", visit_ids):
            visit = r.pop("visit_id")
            out.setdefault(visit, []).append(r)
        return out

    def rep_may_read_attachment(self, sha256: str, rep_id: str) -> bool:
        """A visit naming it is on a card the rep owns (their customer's history), or
        one of the rep's own visits names it."""
        return self.tx.one(
            "SELECT 1 AS ok FROM visit_attachments va JOIN visits v ON v.id = va.visit_id "
            "JOIN customers c ON c.id = v.customer_id "
            "WHERE va.sha256=? AND (c.owner_rep_id=? OR v.rep_id=?) LIMIT 1",
            (sha256, rep_id, rep_id)) is not None

    def insert_visit_evidence(self, row: dict[str, Any]) -> None:
        row = {**row, "attachments": orjson.dumps(row["attachments"]).decode()}
        self.tx.defer(insert_sql("visit_evidence", tuple(row)), tuple(row.values()))

    def visit_evidence(self, visit_id: str) -> list[dict[str, Any]]:
        rows = self.tx.rows("SELECT * FROM visit_evidence WHERE visit_id=? ORDER BY rev",
                            (visit_id,))
        for r in rows:
            r["attachments"] = orjson.loads(r["attachments"])
        return rows

    def unchecked_evidence(self, limit: int) -> list[dict[str, Any]]:
        rows = self.tx.rows(
            "SELECT e.*, d.sign_public_key FROM visit_evidence e "
            "JOIN devices d ON d.id = e.device_id WHERE e.verified IS NULL "
            "ORDER BY e.received_at, e.visit_id, e.rev LIMIT ?", (limit,))
        for r in rows:
            r["attachments"] = orjson.loads(r["attachments"])
        return rows

    def set_evidence_verdicts(self, verdicts: list[tuple[int, str, int]]) -> None:
        if verdicts:
            self.tx.executemany("UPDATE visit_evidence SET verified=? WHERE visit_id=? AND rev=?",
                                verdicts)

    def count_unchecked_evidence(self) -> int:
        return int(self.tx.scalar("SELECT count(*) FROM visit_evidence WHERE verified IS NULL"))

    def attachment_totals(self) -> dict[str, int]:
        row = self.tx.one("SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM attachments")
        assert row is not None
        return {"attachments": int(row["n"]), "bytes": int(row["b"])}
