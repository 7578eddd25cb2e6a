"""What a database engine gives the archive: transactions over portable SQL.

The archive's stores (`sqlstore.py`) are written once, in SQL that SQLite and
PostgreSQL both accept, with `?` placeholders; an engine runs it. Each engine
keeps its own connections, migrations and locks:

- `sqlite.SQLiteEngine`: one file in WAL mode (Litestream replicates it).
- `postgres.PostgresEngine`: psycopg 3 with a connection pool.

The archive's correctness rests on two promises of `write()` (below): writers
that append to the change feed are serialized, so sequence numbers are
allocated in commit order and a pull can never pass over a change that commits
later with a lower number; and a failed transaction changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .errors import StorageError


class UniqueViolation(Exception):
    """An INSERT or UPDATE hit a unique key. The transaction is lost: the caller
    lets it roll back (on PostgreSQL nothing more may run in it)."""


class JobLock:
    """What `Engine.job_lock` yields: true when this process holds the lock. `alive()`
    asks again, because a lock can be lost without a word (a database session cut by a
    restart or a network failure releases it)."""

    def __init__(self, held: bool, check: Callable[[], bool] | None = None) -> None:
        self.held = held
        self._check = check

    def __bool__(self) -> bool:
        return self.held

    def alive(self) -> bool:
        if not self.held:
            return False
        if self._check is not None and not self._check():
            self.held = False
        return self.held


class Tx(Protocol):
    """One open transaction. SQL uses `?` placeholders only (the PostgreSQL engine
    rewrites them); rows come back as plain dicts with the same column names and
    Python types on every engine (TEXT -> str, INTEGER -> int, BLOB/bytea -> bytes,
    REAL/double -> float)."""

    dialect: str  # "sqlite" or "postgresql", for the rare statement that differs

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed.
        Raises UniqueViolation on a unique key, StorageError otherwise."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        ...

    def defer(self, sql: str, params: Sequence[Any], rank: int = 1) -> None:
        """Run an INSERT or UPDATE later in this transaction: before its next statement
        of any other kind, or its commit. Deferred runs go one executemany per
        statement text (a push of 1,000 visits: five executemany calls, not 5,000
        statements; on PostgreSQL pipelined, not a round trip each): lower `rank`
        first (a row before the rows whose foreign keys name it), then in the order
        each text was first deferred, each text's rows in order. So defer only
        writes whose order across statements that ranks keep is enough, and whose
        errors may surface at the next statement (the caller checked its keys)."""
        ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query."""
        ...

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query as a plain tuple, in the order of its columns (a pull
        page's rows go out as they are read, with no dict per row)."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of a query, or None."""
        ...

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows read as they are consumed (a big listing is never held whole).
        Only valid while the transaction is open."""
        ...


class Engine(Protocol):
    kind: str  # "sqlite" or "postgresql"

    def read(self, one_statement: bool = False) -> AbstractContextManager[Tx]:
        """A read-only view; every query in it sees one consistent snapshot.
        `one_statement`: the block runs exactly one query (a statement is its own
        snapshot), so PostgreSQL needs no transaction around it: two round trips fewer,
        and a second statement raises RuntimeError."""
        ...

    def write(self, serial: bool = True, durable: bool = True) -> AbstractContextManager[Tx]:
        """One transaction: committed when the block ends, rolled back (nothing
        written) when it raises. With `serial` (the default) writers run one at
        a time across every process using this archive, so the change feed's
        sequence and the audit chain are appended in commit order; `serial=False`
        is for writes that append to neither (nonces, leases: they lock the rows
        they change). `durable=False` lets the commit return before it is on disk
        (request nonces only: see server/archive/postgres.py)."""
        ...

    def job_lock(self, name: str) -> AbstractContextManager[JobLock]:
        """Try, without waiting, to become the one runner of background job `name`
        across every worker and host. Yields a true JobLock when this process holds
        it until the block ends (or `alive()` says it was lost), a false one when
        someone else does."""
        ...

    def describe(self) -> str:
        """Where the archive is, with any password removed (safe to log)."""
        ...

    def close(self) -> None:
        """Release connections; the engine is unusable afterwards."""
        ...


__all__ = ["Engine", "JobLock", "StorageError", "Tx", "UniqueViolation"]
