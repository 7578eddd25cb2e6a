"""The SQLite engine: the archive in one file in WAL mode, so Litestream can replicate it.

One connection per thread. Writers take SQLite's write lock up front
(BEGIN IMMEDIATE): one writer at a time across every process on the file, which
is the serial order the change feed needs (engine.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from schema.migrations.server import migrations

from . import datadir
from .engine import JobLock, UniqueViolation
from .errors import StorageError, Unavailable

ARCHIVE_FILE = "archive.db"

# SQLite's words for "the storage cannot take or give data now" (full or failing disk,
# read-only file or file system, lost file): the request was fine, retry later.
_STORAGE_FAILURES = ("disk i/o error", "database or disk is full", "readonly database",
                     "unable to open database", "database is locked", "disk image is malformed",
                     "cannot rollback", "cannot commit")


def is_storage_failure(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        return False
    text = str(exc).lower()
    return any(words in text for words in _STORAGE_FAILURES)


@contextmanager
def _mapped() -> Iterator[None]:
    """SQLite's exceptions as the engine's: a duplicate key, a failing disk; a bug
    (bad SQL, a trigger's refusal) stays what it is."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
            raise UniqueViolation(str(exc)) from exc
        raise
    except sqlite3.DatabaseError as exc:
        if is_storage_failure(exc):
            raise StorageError(f"the archive's storage failed: {exc}") from exc
        raise


def connect(path: Path) -> sqlite3.Connection:
    # Every customer in plaintext: owner-only, and SQLite gives -wal and -shm the same mode.
    with contextlib.suppress(OSError):  # not ours, or a read-only mount: check_ready says so
        st = os.stat(path)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(path, 0o600)
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 10000")
    # NORMAL is durable across process crashes in WAL mode and is what
    # Litestream's documentation recommends.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # A pushed batch of 500 visits dirties ~2,500 pages (random-id keys in the visit,
    # revision and applied-op B-trees): with the 2 MiB default cache they spill to the
    # WAL mid-transaction and are written again. 16 MiB (per connection, filled only
    # as used) keeps a batch in memory: ~20-30% less time per pushed operation.
    conn.execute("PRAGMA cache_size = -16384")
    return conn


class SQLiteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.deferred: dict[tuple[int, str], list[Sequence[Any]]] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.deferred:
            self.flush()
        # A plain try costs less than entering the _mapped() context manager each time.
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.DatabaseError:
            with _mapped():
                raise

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.deferred:
            self.flush()
        with _mapped():
            self.conn.executemany(sql, rows)

    def defer(self, sql: str, params: Sequence[Any], rank: int = 1) -> None:
        self.deferred.setdefault((rank, sql), []).append(params)

    def flush(self) -> None:
        """Run what was deferred (engine.Tx.defer): one executemany per statement."""
        deferred, self.deferred = self.deferred, {}
        with _mapped():
            # sorted() is stable: equal ranks keep the dict's first-deferred order.
            for (_, sql), rows in sorted(deferred.items(), key=lambda item: item[0][0]):
                self.conn.executemany(sql, rows)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.deferred:
            self.flush()
        with _mapped():
            # Plain tuples zipped with the column names: dict(sqlite3.Row) cost ~2x as
            # much per row (a first sync's pull pages read ~100,000 rows).
            cur = self.conn.cursor()
            cur.row_factory = None
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur]

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.deferred:
            self.flush()
        with _mapped():
            cur = self.conn.cursor()
            cur.row_factory = None
            return cur.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        if self.deferred:
            self.flush()
        with _mapped():
            row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.deferred:
            self.flush()
        with _mapped():
            row = self.conn.execute(sql, params).fetchone()
        return row[0] if row is not None else None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        if self.deferred:
            self.flush()
        with _mapped():
            cursor = self.conn.execute(sql, params)  # runs, and fails, now
        return (dict(r) for r in cursor)


def schema_state(conn: sqlite3.Connection) -> tuple[list[str], list[str]]:
    """(pending, unknown) migration names of the archive on `conn`."""
    db = Database(conn)
    applied = [m.name for m in migrations.applied(db)]
    known = [m.name for m in migrations._migrations]
    return [n for n in known if n not in applied], [n for n in applied if n not in known]


class SQLiteEngine:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.RLock()  # reentrant: a nested write fails in SQLite, as before

    @classmethod
    def open(cls, path: Path) -> SQLiteEngine:
        """The archive at `path`; raises Unavailable when there is none or its schema
        is not this server's."""
        if not path.exists():
            raise Unavailable("not_initialized", f"no archive at {path}: run "
                              f"`fieldvault-server init --data {path.parent}`")
        engine = cls(path)
        with engine.read() as tx:
            assert isinstance(tx, SQLiteTx)
            try:
                pending, unknown = schema_state(tx.conn)
            except sqlite3.DatabaseError as exc:
                engine.close()
                raise Unavailable("archive_unusable", f"{path} is not a readable FieldVault "
                                  f"archive ({exc})") from None
        if unknown or pending:
            engine.close()
            raise _mismatch(str(path), pending, unknown, f"--data {path.parent}")
        return engine

    @classmethod
    def init(cls, path: Path) -> SQLiteEngine:
        """Create or migrate the archive file; idempotent."""
        datadir.create_private_file(path)
        conn = connect(path)
        # sqlite-utils migrates without a cross-process lock: two `init`s at once (a
        # deploy script and an operator) would both try the first migration.
        lock = os.open(path.parent / f".{path.name}.init.lock",
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _, unknown = schema_state(conn)
            if unknown:
                raise _mismatch(str(path), [], unknown, "")
            migrations.apply(Database(conn))
        finally:
            os.close(lock)
            conn.close()
        return cls(path)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with _mapped():
                conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def read(self, one_statement: bool = False) -> Iterator[SQLiteTx]:
        # one_statement changes nothing here: BEGIN and COMMIT cost no round trip.
        conn = self._conn()
        if conn.in_transaction:  # inside this thread's own write: read what it wrote
            writing = getattr(self._local, "tx", None)
            yield writing if writing is not None and writing.conn is conn else SQLiteTx(conn)
            return
        with _mapped():
            conn.execute("BEGIN")
        try:
            yield SQLiteTx(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    @contextmanager
    def write(self, serial: bool = True, durable: bool = True) -> Iterator[SQLiteTx]:
        # SQLite has one writer at a time anyway: `serial` changes nothing here, and
        # every commit is as durable as synchronous=NORMAL makes it.
        # IMMEDIATE takes the write lock up front, avoiding deadlock-style
        # SQLITE_BUSY when two readers both try to upgrade.
        conn = self._conn()
        # This process's writers queue here, each woken as the one before it ends; on
        # SQLite's lock alone they would poll it with sleeps of up to 100 ms (its busy
        # handler), which a push batch waiting behind another would pay in full.
        with self._writer:
            with _mapped():
                conn.execute("BEGIN IMMEDIATE")
            tx = self._local.tx = SQLiteTx(conn)
            try:
                yield tx
                tx.flush()
            except BaseException:
                if conn.in_transaction:  # SQLite already rolled back after e.g. a full disk
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.tx = None
            with _mapped():
                conn.execute("COMMIT")

    @contextmanager
    def job_lock(self, name: str) -> Iterator[JobLock]:
        # flock: released by the kernel when the holder dies, so a crashed worker
        # never keeps the jobs from running. A SQLite archive lives on one host.
        lock = self.path.parent / f".{self.path.name}.{name}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield JobLock(False)
                return
            yield JobLock(True)  # an flock is held as long as the descriptor is open
        finally:
            os.close(fd)

    def describe(self) -> str:
        return f"sqlite://{self.path.resolve()}"

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()


def _mismatch(where: str, pending: list[str], unknown: list[str], how: str) -> Unavailable:
    if unknown:
        return Unavailable("schema_too_new", (
            f"the archive {where} has a newer schema ({', '.join(unknown)}) than this "
            "server knows: upgrade fieldvault-server"))
    return Unavailable("schema_outdated", (
        f"the archive {where} needs schema changes ({', '.join(pending)}): run "
        f"`fieldvault-server init {how}`".rstrip()))


__all__ = ["ARCHIVE_FILE", "SQLiteEngine", "SQLiteTx", "connect",
           "is_storage_failure"]
