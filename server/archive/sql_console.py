"""The staff console's sessions and the paged, indexed lists its pages walk, in portable
SQL (contracts: store.Console). Every list is a keyset page: `after` is the last key of
the previous page, so page 2,000 costs what page 1 does."""

from __future__ import annotations

from typing import Any

from .sql_pool import _card_filter
from .sql_review import _VISIT_VIEW
from .sqlbase import SqlBase, insert_row
from .store import CardFilter


def _reps_in(column: str, rep_ids: list[str] | None) -> tuple[str, list[Any]]:
    if rep_ids is None:
        return "", []
    if not rep_ids:
        return " AND 1=0", []
    return f" AND {column} IN ({','.join('?' for _ in rep_ids)})", list(rep_ids)


class ConsoleSql(SqlBase):
    # --- sessions ---------------------------------------------------------------------

    def insert_console_session(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "console_sessions", row)

    def console_session(self, token_digest: str) -> dict[str, Any] | None:
        return self.tx.one(
            "SELECT cs.token_digest, cs.id, cs.staff_id, cs.csrf_key, cs.created_at, cs.expires_at,"
            " cs.last_seen_at, s.name, s.role, s.rep_id, s.disabled_at"
            " FROM console_sessions cs JOIN staff s ON s.id = cs.staff_id"
            " WHERE cs.token_digest = ? AND cs.revoked_at IS NULL", (token_digest,))

    def touch_console_session(self, token_digest: str, at: str, unless_after: str) -> None:
        self.tx.execute("UPDATE console_sessions SET last_seen_at = ? WHERE token_digest = ?"
                        " AND last_seen_at < ?", (at, token_digest, unless_after))

    def revoke_console_session(self, token_digest: str, at: str) -> int:
        return self.tx.execute("UPDATE console_sessions SET revoked_at = ? WHERE token_digest = ?"
                               " AND revoked_at IS NULL", (at, token_digest))

    # --- paged lists --------------------------------------------------------------------

    def customers_page(self, where: CardFilter, after: str, limit: int) -> list[dict[str, Any]]:
        sql, params = _card_filter(where)
        sql = (sql + " AND" if sql else " WHERE") + " c.card_no > ?"
        return self.tx.rows(
            "SELECT c.id, c.card_no, c.name, c.grade, c.owner_rep_id, c.owned_since, c.locked,"
            " c.last_served_at, c.phone, c.decision_maker, r.name AS owner_name FROM customers c"
            f" LEFT JOIN reps r ON r.id = c.owner_rep_id{sql} ORDER BY c.card_no LIMIT ?",
            (*params, after, limit))

    def review_page(self, rep_ids: list[str] | None, after: tuple[str, str],
                    limit: int) -> list[dict[str, Any]]:
        # `rep_id || ''` keeps the planner on visits(status, started_at): the statistics
        # cannot tell that few visits are submitted, and walking each rep's visits
        # then sorting them all costs seconds at a million visits.
        reps, params = _reps_in("v.rep_id || ''", rep_ids)
        return self.tx.rows(
            _VISIT_VIEW + " WHERE v.status = 'submitted' AND v.started_at >= ? AND"
            " (v.started_at > ? OR v.id > ?)" + reps + " ORDER BY v.started_at, v.id LIMIT ?",
            (after[0], after[0], after[1], *params, limit))

    def count_visits_by_status(self, rep_ids: list[str] | None, status: str) -> int:
        reps, params = _reps_in("rep_id", rep_ids)
        return int(self.tx.scalar(
            "SELECT count(*) FROM visits WHERE status = ?" + reps, (status, *params)))

    def count_callbacks(self, rep_ids: list[str] | None, callback: str) -> int:
        reps, params = _reps_in("rep_id", rep_ids)
        return int(self.tx.scalar(
            "SELECT count(*) FROM visits WHERE callback = ? AND status <> 'void'" + reps,
            (callback, *params)))

    def visits_per_day(self, rep_ids: list[str] | None, start: str,
                       end: str) -> list[dict[str, Any]]:
        reps, params = _reps_in("rep_id", rep_ids)
        return self.tx.rows(
            "SELECT rep_id, substr(started_at, 1, 10) AS day, count(*) AS visits FROM visits"
            " WHERE started_at >= ? AND started_at < ? AND status <> 'void'" + reps +
            " GROUP BY rep_id, substr(started_at, 1, 10) ORDER BY rep_id, day",
            (start, end, *params))

    def plan_counts(self, rep_ids: list[str] | None, first_day: str,
                    last_day: str) -> dict[str, int]:
        reps, params = _reps_in("rep_id", rep_ids)
        rows = self.tx.rows(
            "SELECT status, count(*) AS n FROM plans WHERE day >= ? AND day <= ?" + reps +
            " GROUP BY status", (first_day, last_day, *params))
        return {str(r["status"]): int(r["n"]) for r in rows}

    def callbacks_by(self, staff_ref: str, since: str) -> dict[str, int]:
        # Sums, not GROUP BY callback: a GROUP BY lets the planner walk an index on
        # `callback` over every visit instead of this caller's range.
        row = self.tx.one(
            "SELECT sum(CASE WHEN callback = 'verified' THEN 1 ELSE 0 END) AS verified,"
            " sum(CASE WHEN callback = 'disputed' THEN 1 ELSE 0 END) AS disputed"
            " FROM visits WHERE callback_by = ? AND callback_at >= ?", (staff_ref, since)) or {}
        return {k: int(v) for k, v in row.items() if v}

    def nearing_pool(self, rep_ids: list[str] | None) -> list[dict[str, Any]]:
        # Driven from pool_warnings (small: only warned cards), each card by its key;
        # `owner_rep_id || ''` keeps the planner from walking every card of the team.
        reps, params = _reps_in("w.rep_id", rep_ids)
        return self.tx.rows(
            "SELECT w.customer_id, w.rep_id, w.due_at, w.warned_at, c.card_no, c.name, c.grade,"
            " c.owned_since, c.last_served_at, r.name AS rep_name FROM pool_warnings w"
            " JOIN customers c ON c.id = w.customer_id AND c.owner_rep_id || '' = w.rep_id"
            " JOIN reps r ON r.id = w.rep_id WHERE c.locked = 0" + reps +
            " ORDER BY w.due_at, c.card_no", tuple(params))

    def disputes_page(self, rep_ids: list[str] | None, limit: int) -> list[dict[str, Any]]:
        # Newest first along visits(callback, callback_at); `rep_id || ''` keeps the
        # planner from fetching and sorting every disputed visit of the team instead.
        reps, params = _reps_in("v.rep_id || ''", rep_ids)
        return self.tx.rows(
            _VISIT_VIEW + " WHERE v.callback = 'disputed'" + reps +
            " ORDER BY v.callback_at DESC, v.id DESC LIMIT ?", (*params, limit))
