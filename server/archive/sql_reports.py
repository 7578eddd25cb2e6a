"""Read-only queries behind the daily and weekly reports, in portable SQL (contracts: store.Reports)."""

from __future__ import annotations

from .sqlbase import SqlBase


class ReportSql(SqlBase):
    pass
