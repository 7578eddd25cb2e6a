"""Read-only queries behind the daily and weekly reports, in portable SQL (contracts: store.Reports)."""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase


def _by_start(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows.sort(key=lambda r: (r["started_at"], r["id"]))  # chunks of a long IN list
    return rows


class ReportSql(SqlBase):
    def visits_between(self, rep_ids: list[str], start: str, end: str) -> list[dict[str, Any]]:
        return _by_start(self._in(
            "SELECT v.*, c.name AS customer_name, c.card_no FROM visits v "
            "JOIN customers c ON c.id = v.customer_id "
            "WHERE v.rep_id IN ({}) AND v.started_at >= ? AND v.started_at < ? "
            "AND v.status <> 'void'", rep_ids, (start, end)))

    def visits_to_customers(self, customer_ids: list[str], start: str,
                            end: str) -> list[dict[str, Any]]:
        return _by_start(self._in(
            "SELECT * FROM visits WHERE customer_id IN ({}) AND started_at >= ? "
            "AND started_at < ? AND status <> 'void'", customer_ids, (start, end)))

    def ownership_gains(self, rep_ids: list[str], sources: list[str], start: str,
                        end: str) -> list[dict[str, Any]]:
        marks = ",".join("?" for _ in sources)
        rows = self._in(
            "SELECT o.*, c.card_no, c.name FROM ownership o JOIN customers c ON c.id = o.customer_id "
            f"WHERE o.to_rep_id IN ({{}}) AND o.source IN ({marks}) AND o.at >= ? AND o.at < ?",
            rep_ids, (*sources, start, end))
        rows.sort(key=lambda r: (r["at"], r["id"]))
        return rows
