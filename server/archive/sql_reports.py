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

    def nearing_pool_return(self, rep_ids: list[str], cutoffs: dict[str, str],
                            other: str) -> list[dict[str, Any]]:
        # Along customers(owner_rep_id): the team's cards only, filtered in the engine;
        # the pool clock's anchor is the later of owned_since and last_served_at.
        when = " ".join("WHEN ? THEN ?" for _ in cutoffs)
        rows = self._in(
            "SELECT c.id, c.card_no, c.name, c.grade, c.owner_rep_id, c.owned_since,"
            " c.last_served_at FROM customers c WHERE c.owner_rep_id IN ({}) AND c.locked = 0"
            " AND (coalesce(c.owned_since, '') <> '' OR coalesce(c.last_served_at, '') <> '')"
            " AND CASE WHEN coalesce(c.last_served_at, '') > coalesce(c.owned_since, '')"
            " THEN c.last_served_at ELSE coalesce(c.owned_since, '') END"
            f" <= CASE lower(c.grade) {when} ELSE ? END",
            rep_ids, (*(v for pair in cutoffs.items() for v in pair), other))
        rows.sort(key=lambda r: (r["owner_rep_id"], r["card_no"]))
        return rows
