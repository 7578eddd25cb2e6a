"""What the office's oversight pages read (contracts: store.Oversight): the audit log
filtered and paged, how many cards a pool rule would reach, the HR system's tokens.

The audit filter runs over the seq primary key, newest first, so a page of the log
stays cheap however long the chain grows.
"""

from __future__ import annotations

from typing import Any

from .sqlbase import SqlBase
from .store import AuditFilter


def _audit_where(where: AuditFilter) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if where.actor:
        clauses.append("actor = ?")
        params.append(where.actor)
    if where.action:  # a prefix: `staff.` finds every staff.* entry
        clauses.append("substr(action, 1, ?) = ?")
        params += [len(where.action), where.action]
    if where.subject:
        clauses.append("subject = ?")
        params.append(where.subject)
    if where.since:
        clauses.append("at >= ?")
        params.append(where.since)
    if where.until:
        clauses.append("at < ?")
        params.append(where.until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


class OpsSql(SqlBase):
    def audit_page(self, where: AuditFilter, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        sql, params = _audit_where(where)
        return self.tx.rows("SELECT * FROM audit_log" + sql + " ORDER BY seq DESC LIMIT ? OFFSET ?",
                            (*params, limit, offset))

    def count_audit_page(self, where: AuditFilter) -> int:
        sql, params = _audit_where(where)
        return int(self.tx.scalar("SELECT count(*) FROM audit_log" + sql, params))

    def count_pool_candidates(self, cutoffs: list[tuple[str, str]]) -> list[int]:
        # One scan whatever the number of (grade, cutoff) pairs: a policy preview asks
        # for four per grade, and the cards have no index by pool clock.
        if not cutoffs:
            return []
        sums = ", ".join(f"sum(CASE WHEN grade = ? AND anchor <= ? THEN 1 ELSE 0 END) AS n{i}"
                         for i in range(len(cutoffs)))
        row = self.tx.one(
            f"SELECT {sums} FROM (SELECT grade, CASE WHEN last_served_at IS NULL"
            " OR last_served_at < owned_since THEN owned_since ELSE last_served_at END AS anchor"
            " FROM customers WHERE owner_rep_id IS NOT NULL AND locked = 0) AS owned",
            tuple(v for pair in cutoffs for v in pair))
        assert row is not None
        return [int(row[f"n{i}"] or 0) for i in range(len(cutoffs))]

    def hr_tokens(self) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT name, created_at, revoked_at FROM hr_tokens"
                            " ORDER BY created_at, name")

    def revoke_hr_tokens(self, name: str, at: str) -> int:
        return self.tx.execute("UPDATE hr_tokens SET revoked_at=? WHERE name=? AND revoked_at IS NULL",
                               (at, name))
