"""The pool (公海): warnings, claims, locks, duplicate keys, in portable SQL (contracts: store.Pool)."""

from __future__ import annotations

from .sqlbase import SqlBase


class PoolSql(SqlBase):
    pass
