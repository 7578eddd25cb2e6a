"""Daily visit plans and their revisions, in portable SQL (contracts: store.Plans)."""

from __future__ import annotations

from .sqlbase import SqlBase


class PlanSql(SqlBase):
    pass
