"""PostgreSQL engine of the archive: psycopg 3 and a connection pool.

Runs the archive's portable SQL (`?` placeholders, see `engine.Tx`) on PostgreSQL,
with the same promises as the SQLite engine:

- `write()` (serial) takes one transaction-scoped advisory lock first, so writers
  run one at a time across every worker process and host. That is what keeps the
  change feed safe: `feed.seq` comes from a sequence, which hands out numbers when a
  row is inserted, not when its transaction commits. Without the lock, writer A
  could take seq 10, writer B seq 11, B commit first, and a pull in between would
  return 11 and move the agent's cursor past 10, which then commits and is never
  pulled. Under the lock, every number is taken and committed before the next
  writer takes one, so numbers become visible in order (a rolled-back writer leaves
  a gap, which loses nothing). Writes run in READ COMMITTED: each statement sees
  everything committed before it, including the previous lock holder's work; a
  REPEATABLE READ snapshot would be taken at the lock statement, before the wait.
- `read()` is one READ ONLY REPEATABLE READ transaction: one snapshot for all its
  queries, as a SQLite read transaction gives.
- Storage failures (unreachable server, lost connection, disk full, too many
  connections) become `StorageError` with a message that never holds the password;
  a unique key becomes `engine.UniqueViolation`; anything else is a bug and propagates.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, tuple_row
from psycopg.types.numeric import NumericLoader
from psycopg_pool import ConnectionPool

from schema.migrations import server_pg

from .engine import JobLock, UniqueViolation
from .errors import StorageError, Unavailable
from .url import redact

# Fixed advisory lock keys. The write lock is one bigint key; job locks use the
# two-int4 key space (class, hashtext(name)), which never collides with bigint keys.
WRITE_LOCK_KEY = 0x4656_7772_6974_6572  # "FVwriter"
JOB_LOCK_CLASS = 0x4656_4A42  # "FVJB"
CONNECT_TIMEOUT_S = 5  # a wrong host or port fails fast instead of hanging a CLI
POOL_TIMEOUT_S = 15.0  # waiting for a free pooled connection before reporting a failure

T = TypeVar("T")
Conn = psycopg.Connection[Any]


# --- SQL translation ----------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """`?` placeholders to psycopg's `%s`, outside quotes and comments; a literal `%`
    becomes `%%` everywhere (psycopg reads `%` in the whole text, literals included)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n and sql[end] != ch:
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))  # '' inside a string reopens it: fine
            i = end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite stores True as 1 in an INTEGER column; PostgreSQL refuses a boolean there.
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class _AggregateNumericLoader(NumericLoader):
    """There is no NUMERIC column in the schema: numerics come only from aggregates.
    sum() of BIGINT is NUMERIC with no fraction digits (SQLite returns int), avg() has
    fraction digits (SQLite returns float). Decimal would match neither."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        if isinstance(value, Decimal) and value.is_finite():
            exponent = value.as_tuple().exponent
            return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
        return float(value)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("numeric", _AggregateNumericLoader)


# --- errors -------------------------------------------------------------------

_CONNECT_NOISE = re.compile(r'^(connection failed: )?(connection to server (at|on) .*? failed: )?')


def _reason(exc: BaseException, secret: str | None) -> str:
    """One line from a psycopg error, without the password and libpq's boilerplate."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = _CONNECT_NOISE.sub("", text)
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    if secret:
        text = text.replace(secret, "***")
    return text or type(exc).__name__


class _Errors:
    """Maps psycopg errors for one engine (knows its safe address and its password)."""

    def __init__(self, where: str, secret: str | None) -> None:
        self.where = where
        self.secret = secret

    @contextmanager
    def mapped(self, writable: bool = True) -> Iterator[None]:
        try:
            yield
        except pg_errors.UniqueViolation as exc:
            raise UniqueViolation(_reason(exc, self.secret)) from exc
        except psycopg.OperationalError as exc:  # connection, disk, memory, timeouts, pool
            raise StorageError(f"the archive at {self.where} failed: {_reason(exc, self.secret)}") from exc
        except pg_errors.ReadOnlySqlTransaction as exc:
            if not writable:  # a write inside read(): a bug
                raise
            raise StorageError(f"the archive at {self.where} is read-only (a standby server?): "
                               f"{_reason(exc, self.secret)}") from exc


# --- transactions ---------------------------------------------------------------

_stream_names = itertools.count(1)


class PgTx:
    """engine.Tx over one psycopg connection inside an open transaction; or, `one_read`
    (PostgresEngine.read(one_statement=True)), outside any: for a block that runs one
    read statement, which sees one snapshot by itself. Then BEGIN and COMMIT, two of
    its three round trips, are not sent; a second statement is a bug and raises, and a
    connection found broken by the statement (dropped while idle in the pool: a server
    restart, a failover) is replaced by `replace` and the read sent again."""

    dialect = "postgresql"

    def __init__(self, conn: Conn, errors: _Errors, writable: bool, one_read: bool = False,
                 replace: Callable[[Conn], Conn] | None = None) -> None:
        self._conn = conn
        self._errors = errors
        self._writable = writable
        self._one_read = one_read
        self._replace = replace
        self.deferred: dict[tuple[int, str], list[Sequence[Any]]] = {}

    @property
    def conn(self) -> Conn:
        return self._conn

    def _run(self, statement: Callable[[Conn], T]) -> T:
        if not self._one_read:
            return statement(self._conn)
        if self._replace is None:
            raise RuntimeError("a one-statement read ran a second statement")
        replace, self._replace = self._replace, None
        try:
            return statement(self._conn)
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
        self._conn = replace(self._conn)
        return statement(self._conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._in_transaction()  # a write outside a transaction would commit at once
        if self.deferred:
            self.flush()
        with self._errors.mapped(self._writable):
            return self._conn.execute(translate(sql), _params(params)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._in_transaction()
        if self.deferred:
            self.flush()
        with self._errors.mapped(self._writable), self._conn.cursor() as cur:
            cur.executemany(translate(sql), [_params(r) for r in rows])

    def defer(self, sql: str, params: Sequence[Any], rank: int = 1) -> None:
        self._in_transaction()
        self.deferred.setdefault((rank, sql), []).append(params)

    def _in_transaction(self) -> None:
        if self._one_read:  # writes need a transaction, and so does a server-side cursor
            raise RuntimeError("a one-statement read runs one query, outside a transaction")

    def flush(self) -> None:
        """Run what was deferred (engine.Tx.defer): psycopg pipelines each executemany,
        so a batch costs a few round trips instead of one per row."""
        deferred, self.deferred = self.deferred, {}
        # sorted() is stable: equal ranks keep the dict's first-deferred order.
        for (_, sql), rows in sorted(deferred.items(), key=lambda item: item[0][0]):
            with self._errors.mapped(self._writable), self._conn.cursor() as cur:
                cur.executemany(translate(sql), [_params(r) for r in rows])

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.deferred:
            self.flush()
        with self._errors.mapped(self._writable):
            return self._run(lambda c: c.execute(translate(sql), _params(params)).fetchall())

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.deferred:
            self.flush()

        def run(conn: Conn) -> list[tuple[Any, ...]]:
            with conn.cursor(row_factory=tuple_row) as cur:
                return cur.execute(translate(sql), _params(params)).fetchall()

        with self._errors.mapped(self._writable):
            return self._run(run)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        if self.deferred:
            self.flush()
        with self._errors.mapped(self._writable):
            return self._run(lambda c: c.execute(translate(sql), _params(params)).fetchone())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """A server-side cursor: rows arrive in batches as they are consumed. The query
        is declared (and fails) now, not at the first row."""
        self._in_transaction()
        if self.deferred:
            self.flush()
        cur = self._conn.cursor(name=f"fv_stream_{next(_stream_names)}")
        try:
            with self._errors.mapped(self._writable):
                cur.execute(translate(sql), _params(params))
        except BaseException:
            cur.close()
            raise
        cur.itersize = 500
        return self._drain(cur)

    def _drain(self, cur: psycopg.ServerCursor[Any]) -> Iterator[dict[str, Any]]:
        try:
            with self._errors.mapped(self._writable):
                yield from cur
        finally:
            with contextlib.suppress(psycopg.Error):
                cur.close()


# --- the engine -------------------------------------------------------------------


def _conninfo(url: str) -> str:
    """The URL with our connection defaults; values the URL sets itself win."""
    given = conninfo_to_dict(url)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given:
        extra["application_name"] = "fieldvault-server"
    return make_conninfo(url, **extra)


def _password(url: str) -> str | None:
    with contextlib.suppress(psycopg.ProgrammingError):
        pw = conninfo_to_dict(url).get("password")
        return str(pw) if pw else None
    return None


class PostgresEngine:
    """engine.Engine on PostgreSQL. Thread-safe: transactions take pooled connections."""

    kind = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10,
                 timeout: float = POOL_TIMEOUT_S) -> None:
        self._url = url
        self._conninfo = _conninfo(url)
        self._where = redact(url)
        self._errors = _Errors(self._where, _password(url))
        self._serial = threading.Lock()
        self._pool = ConnectionPool(
            self._conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
            kwargs={"autocommit": True, "row_factory": dict_row}, configure=_configure,
            # Not checked on checkout (a round trip each time, and a no-op sync's request
            # takes three): a connection broken while idle (server restart, failover)
            # is found by the transaction's first statement, before anything was done,
            # and replaced then (_checkout, PgTx).
            name="fieldvault-archive", open=False,
        )
        with self._errors.mapped():
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 1)

    # --- opening ------------------------------------------------------------

    @classmethod
    def open(cls, url: str, **pool: Any) -> PostgresEngine:
        """An engine on an existing archive whose schema is this server's. Raises
        StorageError when the database cannot be reached, Unavailable when its schema
        is missing, behind or ahead."""
        where = redact(url)
        with cls._connect(url) as conn:
            names = server_pg.recorded(conn)
        fix = f"run `fieldvault-server init --archive {where}`"
        if names is None:
            raise Unavailable("not_initialized", f"no FieldVault archive in {where}: {fix}")
        unknown = sorted(set(names) - set(server_pg.KNOWN))
        if unknown:
            raise Unavailable(
                "schema_too_new",
                f"the archive at {where} has schema changes this server does not know "
                f"({', '.join(unknown)}): upgrade this server",
            )
        missing = [n for n in server_pg.KNOWN if n not in names]
        if missing:
            raise Unavailable(
                "schema_outdated",
                f"the archive at {where} lacks schema changes ({', '.join(missing)}): {fix}",
            )
        return cls(url, **pool)

    @classmethod
    def init(cls, url: str, **pool: Any) -> PostgresEngine:
        """Create or migrate the archive's schema (idempotent, safe to run concurrently);
        returns an engine on it."""
        cls.migrate(url)
        return cls(url, **pool)

    @classmethod
    def migrate(cls, url: str) -> list[str]:
        """Apply the migrations the database lacks; returns their names."""
        where = redact(url)
        with cls._connect(url) as conn:
            try:
                with _Errors(where, _password(url)).mapped():
                    return server_pg.apply(conn)
            except server_pg.SchemaTooNew as exc:
                raise Unavailable(
                    "schema_too_new",
                    f"the archive at {where} has schema changes this server does not know "
                    f"({', '.join(exc.unknown)}): upgrade this server",
                ) from None

    @staticmethod
    def _connect(url: str) -> psycopg.Connection[Any]:
        """One autocommit connection, failing with one line that says what to fix."""
        try:
            return psycopg.connect(_conninfo(url), autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot reach the archive at {redact(url)}: {_reason(exc, _password(url))}; "
                "check --archive"
            ) from None

    # --- engine.Engine ------------------------------------------------------------

    @contextmanager
    def read(self, one_statement: bool = False) -> Iterator[PgTx]:
        if one_statement:
            # One statement sees one snapshot by itself: no BEGIN or COMMIT (PgTx).
            with self._errors.mapped(False):
                conn = self._pool.getconn()
            try:
                yield PgTx(conn, self._errors, writable=False, one_read=True,
                           replace=self._replace)
            finally:
                self._pool.putconn(conn)
            return
        # Custom plans only: psycopg prepares a statement after 5 runs, and PostgreSQL then
        # tends to a generic plan, which for the pull's feed query (rep_id=$1 AND seq>$2
        # ORDER BY seq LIMIT $3) walks the primary key from the cursor filtering rep_id:
        # every later change of every rep, not this rep's (measured: 24 ms instead of
        # 0.2 ms per page with 100k foreign rows after the cursor; scripts/bench no-op
        # sync 61 ms on a 100k-visit archive against 15 ms on a 1k one).
        begin = ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                 "SET LOCAL plan_cache_mode = force_custom_plan")
        with self._transaction(begin, writable=False) as tx:
            yield tx

    @contextmanager
    def write(self, serial: bool = True, durable: bool = True) -> Iterator[PgTx]:
        # Not durable (request nonces and last-seen times only): the commit need not
        # wait for the WAL flush (SQLite in WAL mode with synchronous=NORMAL does not
        # wait either). A database crash may forget the last instant's nonces, which
        # reopens a replay window of at most the clock skew for requests captured in
        # that instant; a replayed request is answered exactly as the first.
        begin = "BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit TO OFF"
        if not serial:
            with self._transaction(begin, writable=True) as tx:
                yield tx
            return
        # This process's serial writers queue here, before taking a pooled connection:
        # queued on the advisory lock instead, each would hold a connection while it
        # waits, and a burst of pushes would leave none for the reads and nonces every
        # request needs (docs/BENCHMARKS.md, the fleet runs).
        with self._serial:
            # One round trip: BEGIN and the lock go as one simple query.
            with self._transaction(f"{begin}; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})",
                                   writable=True) as tx:
                yield tx

    def _replace(self, broken: Conn) -> Conn:
        """A connection for one found broken before anything was done on it. The pool
        drops the broken one; its idle siblings are checked now, as they are likely gone
        too (a server restart drops every connection)."""
        self._pool.putconn(broken)
        self._pool.check()
        return self._pool.getconn()

    @contextmanager
    def _checkout(self, begin: bytes) -> Iterator[Conn]:
        """A pooled connection with `begin` run on it (replaced once if found broken)."""
        conn = self._pool.getconn()
        try:
            try:
                conn.execute(begin)
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
                conn = self._replace(conn)
                conn.execute(begin)
            yield conn
        finally:
            self._pool.putconn(conn)

    @contextmanager
    def _transaction(self, begin: str, writable: bool) -> Iterator[PgTx]:
        with self._errors.mapped(writable), self._checkout(begin.encode()) as conn:
            try:
                tx = PgTx(conn, self._errors, writable)
                yield tx
                tx.flush()
            except BaseException:
                with contextlib.suppress(psycopg.Error):  # a lost connection is rolled back anyway
                    conn.execute(b"ROLLBACK")
                raise
            if conn.info.transaction_status == TransactionStatus.INERROR:
                conn.execute(b"ROLLBACK")
                if not writable:  # a read that caught its own failed query: nothing lost
                    return
                # A statement failed and the caller carried on: PostgreSQL has already
                # given the whole transaction up (SQLite would have undone only that
                # statement). Committing would silently write nothing; say so instead.
                raise RuntimeError("a statement failed inside this archive transaction and the "
                                   "caller went on; PostgreSQL rolled the whole transaction back")
            conn.execute(b"COMMIT")

    @contextmanager
    def job_lock(self, name: str) -> Iterator[JobLock]:
        """A session advisory lock on a connection of its own (not pooled), held for the
        block: if this process dies, its connection closes and the lock is free again."""
        with self._errors.mapped():
            conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with self._errors.mapped():
                row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                   (JOB_LOCK_CLASS, name)).fetchone()
            held = bool(row and row[0])

            def still_held() -> bool:
                try:
                    return bool(conn.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                        "pid = pg_backend_pid() AND classid = %s AND objid = hashtext(%s)::oid "
                        "AND granted", (JOB_LOCK_CLASS, name)).fetchone()[0])  # type: ignore[index]
                except psycopg.Error:
                    return False  # the session is gone, and its lock with it

            yield JobLock(held, still_held)
            if held:  # explicit, so the next holder need not wait for the backend to exit
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (JOB_LOCK_CLASS, name))
        finally:
            conn.close()

    def describe(self) -> str:
        return self._where

    def close(self) -> None:
        self._pool.close()


__all__ = ["PostgresEngine", "PgTx", "translate"]
