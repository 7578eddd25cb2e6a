"""The pool (公海): warnings, claims, locks, duplicate keys, in portable SQL (contracts: store.Pool)."""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase
from .store import CardFilter

_POOL_COLUMNS = (
    "c.id, c.card_no, c.name, c.industry, c.area, c.grade, "
    "(SELECT max(o.at) FROM ownership o WHERE o.customer_id = c.id AND o.to_rep_id IS NULL)"
    " AS in_pool_since")


def _like(text: str) -> str:
    """`%text%` with LIKE's own wildcards taken literally (ESCAPE '\\')."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _pool_search(search: str) -> tuple[str, tuple[Any, ...]]:
    sql = " FROM customers c WHERE c.owner_rep_id IS NULL"
    if not search:
        return sql, ()
    pattern = _like(search)
    return (sql + " AND (lower(c.name) LIKE ? ESCAPE '\\' OR lower(c.industry) LIKE ? ESCAPE '\\'"
            " OR lower(c.area) LIKE ? ESCAPE '\\' OR c.card_no = ?)",
            (pattern, pattern, pattern, search))


def _card_filter(where: CardFilter) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.owners is not None:
        owned = (f"c.owner_rep_id IN ({','.join('?' for _ in where.owners)})"
                 if where.owners else "1=0")
        params.extend(where.owners)
        clauses.append(f"({owned} OR c.owner_rep_id IS NULL)" if where.pool else owned)
    elif not where.pool:
        clauses.append("c.owner_rep_id IS NOT NULL")
    if where.grade is not None:
        clauses.append("c.grade = ?")
        params.append(where.grade)
    if where.locked is not None:
        clauses.append("c.locked = ?")
        params.append(1 if where.locked else 0)
    if where.served_before is not None:
        clauses.append("(c.last_served_at IS NULL OR c.last_served_at < ?)")
        params.append(where.served_before)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)


class PoolSql(SqlBase):
    def pool_candidates(self, grade: str, cutoff: str, after: str = "",
                        limit: int = 500) -> list[dict[str, Any]]:
        return self.tx.rows(
            "SELECT * FROM customers WHERE owner_rep_id IS NOT NULL AND locked = 0 AND grade = ?"
            " AND owned_since <= ? AND (last_served_at IS NULL OR last_served_at <= ?)"
            " AND card_no > ? ORDER BY card_no LIMIT ?", (grade, cutoff, cutoff, after, limit))

    def insert_pool_warning(self, customer_id: str, rep_id: str, due_at: str,
                            warned_at: str) -> bool:
        return self.tx.execute(
            "INSERT INTO pool_warnings (customer_id, rep_id, due_at, warned_at) VALUES (?,?,?,?)"
            " ON CONFLICT DO NOTHING", (customer_id, rep_id, due_at, warned_at)) == 1

    def pool_warnings(self, rep_ids: list[str] | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT w.*, c.card_no, c.name, c.grade, c.owned_since, c.last_served_at,"
               " r.name AS rep_name FROM pool_warnings w"
               " JOIN customers c ON c.id = w.customer_id AND c.owner_rep_id = w.rep_id"
               " JOIN reps r ON r.id = w.rep_id WHERE c.locked = 0")
        if rep_ids is None:
            return self.tx.rows(sql + " ORDER BY w.due_at, c.card_no")
        return self._in(sql + " AND w.rep_id IN ({}) ORDER BY w.due_at, c.card_no", rep_ids)

    def pool_entries(self, search: str, limit: int, offset: int) -> list[dict[str, Any]]:
        sql, params = _pool_search(search)
        return self.tx.rows(f"SELECT {_POOL_COLUMNS}{sql} ORDER BY c.card_no LIMIT ? OFFSET ?",
                            (*params, limit, offset))

    def count_pool(self, search: str) -> int:
        sql, params = _pool_search(search)
        return int(self.tx.scalar(f"SELECT count(*){sql}", params))

    def claims_since(self, rep_id: str, since: str) -> list[str]:
        return [r["at"] for r in self.tx.rows(
            "SELECT at FROM ownership WHERE to_rep_id = ? AND source = 'claimed' AND at >= ?"
            " ORDER BY at, id", (rep_id, since))]

    def customers_by_keys(self, phone_key: str, name_key: str) -> list[dict[str, Any]]:
        # Two indexed lookups; '' never matches (an empty key means nothing to match on).
        return self.tx.rows(
            "SELECT * FROM customers WHERE (phone_key = ? AND phone_key <> '')"
            " OR (name_key = ? AND name_key <> '') ORDER BY card_no", (phone_key, name_key))

    def customers_missing_keys(self, after: str, limit: int) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT id, name, phone FROM customers WHERE name_key = '' AND id > ?"
                            " ORDER BY id LIMIT ?", (after, limit))

    def set_customer_keys(self, customer_id: str, name_key: str, phone_key: str) -> None:
        self.tx.execute("UPDATE customers SET name_key = ?, phone_key = ? WHERE id = ?",
                        (name_key, phone_key, customer_id))

    def find_customers(self, where: CardFilter, limit: int | None = None,
                       offset: int = 0) -> list[dict[str, Any]]:
        sql, params = _card_filter(where)
        page = " LIMIT ? OFFSET ?" if limit is not None else ""
        return self.tx.rows(
            "SELECT c.*, r.name AS owner_name FROM customers c"
            f" LEFT JOIN reps r ON r.id = c.owner_rep_id{sql} ORDER BY c.card_no{page}",
            (*params, *((limit, offset) if limit is not None else ())))

    def count_found_customers(self, where: CardFilter) -> int:
        sql, params = _card_filter(where)
        return int(self.tx.scalar(f"SELECT count(*) FROM customers c{sql}", params))
