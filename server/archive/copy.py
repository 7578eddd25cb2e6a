"""Copying a whole archive from one engine to another (SQLite -> PostgreSQL, or any
pair), over `engine.Engine` only: no backend code here.

- The source is read in ONE read transaction: the copy is of one moment, whatever
  writes after it began (the server should be stopped anyway: later writes would
  not be in the copy).
- The target is written in ONE serial write transaction, which also verifies what it
  wrote before committing: per-table row counts and content digests equal to the
  source's, the identity sequences past every copied number, and the caller's
  `check` (the audit chain). Anything wrong, or any failure, rolls it all back.
- Every table is copied as is, the epoch in `meta` included: agents' feed cursors
  stay valid and nobody re-enrolls or reconciles. Request nonces are copied too, so
  a request captured shortly before the move cannot be replayed after it.
- Each engine's migration ledger is its own (the target's is written by its own
  migrations), and so are SQLite's and Litestream's bookkeeping tables.

The target must hold no data: any row in any table but `meta` refuses the copy
(`meta` of a target made by `fieldvault-server init` holds a fresh epoch and the
default policy; it is replaced by the source's).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .engine import Engine, Tx
from .errors import ArchiveError, Conflict

# Every table of the archive's schema (schema/migrations/server.py and server_pg.py
# have the same tables and columns), in an order that satisfies the foreign keys,
# each with its primary key (the order rows are read, written and digested in).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("meta", ("key",)),
    ("reps", ("id",)),  # reps.manager_id -> reps: managers first (see _reps_in_order)
    ("hr_tokens", ("token_hash",)),
    ("staff", ("id",)),  # staff.rep_id -> reps
    ("staff_tokens", ("token_hash",)),
    ("console_sessions", ("token_digest",)),  # console_sessions.staff_id -> staff
    ("devices", ("id",)),
    ("enroll_codes", ("code_hash",)),
    ("nonces", ("device_id", "nonce")),
    ("customers", ("id",)),
    ("customer_revisions", ("customer_id", "rev")),
    ("visits", ("id",)),
    ("visit_revisions", ("visit_id", "rev")),
    # The blobs' bytes stay in DATA/blobs: migrate-archive moves rows, not that folder.
    ("attachments", ("sha256",)),
    ("visit_attachments", ("visit_id", "sha256")),
    ("visit_evidence", ("visit_id", "rev")),
    ("ownership", ("id",)),
    ("pool_warnings", ("customer_id", "rep_id", "due_at")),
    ("plans", ("id",)),
    ("plan_revisions", ("plan_id", "rev")),
    ("feed", ("seq",)),
    ("applied_ops", ("op_id",)),
    ("push_inbox", ("id",)),  # push_inbox.device_id -> devices
    ("conflicts", ("id",)),
    ("quarantine", ("id",)),
    ("audit_log", ("seq",)),
    ("revocations", ("id",)),
    ("wipe_orders", ("order_id",)),
)
TABLE_NAMES = tuple(name for name, _ in TABLES)
# Ids handed out by the database (SQLite AUTOINCREMENT, PostgreSQL identity): the
# target's generator must continue past the source's, never reuse a number.
GENERATED: tuple[tuple[str, str], ...] = (
    ("feed", "seq"), ("ownership", "id"), ("conflicts", "id"), ("quarantine", "id"),
    ("revocations", "id"), ("push_inbox", "id"))
BATCH = 1000  # rows per executemany: memory stays flat, round trips stay few

# Tables that are an engine's own bookkeeping, never copied: sqlite-utils' migration
# ledger, SQLite's internals, Litestream's; PostgreSQL's migration ledger.
_OWN_TABLES = ("fieldvault_migrations",)
_OWN_PREFIXES = ("_", "sqlite_")

Progress = Callable[[str, int, int], None]
"""progress(table, rows_done_overall, rows_total): called as batches are written."""


@dataclass
class CopyReport:
    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of each table's rows
    sequences: dict[str, int] = field(default_factory=dict)  # "table.column": high-water mark
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- reading the schema --------------------------------------------------------------


def schema_tables(tx: Tx) -> list[str]:
    """Every table in the database the engine works on, bookkeeping included."""
    if tx.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        sql = ("SELECT table_name AS name FROM information_schema.tables "
               "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
               "ORDER BY table_name")
    return [str(r["name"]) for r in tx.rows(sql)]


def data_tables(tx: Tx) -> list[str]:
    return [t for t in schema_tables(tx)
            if t not in _OWN_TABLES and not t.startswith(_OWN_PREFIXES)]


def check_tables(tx: Tx, where: str) -> None:
    """Refuse a database whose tables are not exactly the archive's."""
    found = set(data_tables(tx))
    if found != set(TABLE_NAMES):
        extra, missing = sorted(found - set(TABLE_NAMES)), sorted(set(TABLE_NAMES) - found)
        detail = "; ".join(part for part in (
            f"unknown tables {', '.join(extra)}" if extra else "",
            f"missing tables {', '.join(missing)}" if missing else "") if part)
        raise ArchiveError("schema_mismatch", f"{where} is not an archive of this server's "
                           f"schema ({detail}): check the URL and the server's version")


def nonempty_tables(tx: Tx) -> list[str]:
    """The data tables holding any row (`meta` aside: see the module's docstring)."""
    return [t for t in TABLE_NAMES
            if t != "meta" and tx.scalar(f"SELECT 1 FROM {t} LIMIT 1") is not None]  # noqa: S608


def ensure_empty(tx: Tx, where: str) -> None:
    full = nonempty_tables(tx)
    if full:
        raise Conflict("target_not_empty", (
            f"the target {where} already holds data (in {', '.join(full[:4])}"
            f"{', ...' if len(full) > 4 else ''}): give a new, empty database; "
            "migrate-archive never merges into or overwrites an archive"))


# --- digests -----------------------------------------------------------------------


def _norm(value: Any) -> Any:
    """One value in a form both engines' rows agree on (orjson has no bytes)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": bytes(value).hex()}
    if isinstance(value, bool):
        return int(value)
    return value


class _Digest:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        # By column name, not position: a column added by ALTER TABLE may sit elsewhere.
        self.hash.update(orjson.dumps({k: _norm(v) for k, v in row.items()},
                                      option=orjson.OPT_SORT_KEYS))
        self.hash.update(b"\n")
        self.count += 1


def _select(table: str, key: tuple[str, ...]) -> str:
    return f"SELECT * FROM {table} ORDER BY {', '.join(key)}"  # noqa: S608 - our own names


def table_digest(tx: Tx, table: str) -> tuple[int, str]:
    """(rows, sha256 of the rows in primary-key order, values normalised) of one table."""
    digest = _Digest()
    for row in tx.stream(_select(table, dict(TABLES)[table])):
        digest.add(row)
    return digest.count, digest.hash.hexdigest()


def archive_digests(engine: Engine) -> dict[str, tuple[int, str]]:
    """{table: (rows, digest)} of every table, read in one snapshot: what a copy must equal."""
    with engine.read() as tx:
        return {t: table_digest(tx, t) for t in TABLE_NAMES}


# --- identity sequences ------------------------------------------------------------------


def high_water(tx: Tx, table: str, column: str) -> int:
    """The largest number the table's id generator has handed out (at least its max id)."""
    top = int(tx.scalar(f"SELECT coalesce(max({column}), 0) FROM {table}") or 0)  # noqa: S608
    if tx.dialect == "sqlite":
        given = tx.scalar("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
    else:
        given = tx.scalar("SELECT pg_sequence_last_value(pg_get_serial_sequence(?, ?)::regclass)",
                          (table, column))
    return max(top, int(given or 0))


def set_high_water(tx: Tx, table: str, column: str, value: int) -> None:
    """Make the next generated id `value + 1` (or 1 when `value` is 0)."""
    if tx.dialect == "sqlite":
        # sqlite_sequence exists once the schema has an AUTOINCREMENT table.
        tx.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        if value:
            tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, value))
    else:
        # is_called false: the next nextval() returns 1 itself (an unused sequence).
        called = "true" if value > 0 else "false"
        tx.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), ?, {called})",
                   (table, column, max(value, 1)))


# --- the copy ---------------------------------------------------------------------------


def _reps_in_order(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Reps with every manager before the reps reporting to them. The rep table is
    small (one row per person), so it is held whole to sort it."""
    pending = list(rows)
    placed: set[str] = set()
    while pending:
        ready = [r for r in pending if r["manager_id"] is None or r["manager_id"] in placed]
        if not ready:
            # A cycle or a dangling manager: inserting would fail the foreign key.
            names = ", ".join(sorted(str(r["id"]) for r in pending)[:5])
            raise ArchiveError("source_inconsistent", f"the source's reps {names} have managers "
                               "that form a cycle or do not exist: fix them before moving")
        for r in ready:
            placed.add(r["id"])
            yield r
        pending = [r for r in pending if r["id"] not in placed]


def copy_archive(source: Engine, target: Engine, *, progress: Progress | None = None,
                 check: Callable[[Tx], None] | None = None,
                 where: str | None = None) -> CopyReport:
    """Copy every row of `source` into `target`, which must hold no data (raises
    Conflict `target_not_empty` otherwise) and have the same schema version (opening
    the engines checked their migrations). Verifies before committing: row counts and
    digests equal, sequences set, then `check(tx)` on the target's transaction (raise
    to refuse). One transaction on each side: a failure anywhere writes nothing."""
    started = time.monotonic()
    report = CopyReport()
    where = where or target.describe()
    with source.read() as src, target.write() as dst:
        check_tables(src, f"the source {source.describe()}")
        check_tables(dst, f"the target {where}")
        ensure_empty(dst, where)
        totals = {t: int(src.scalar(f"SELECT count(*) FROM {t}")) for t in TABLE_NAMES}  # noqa: S608
        total, done = sum(totals.values()), 0
        if progress:
            progress(TABLE_NAMES[0], 0, total)
        # The target's own meta (a fresh epoch, default policy) gives way to the source's.
        dst.execute("DELETE FROM meta")
        for table, key in TABLES:
            rows: Iterable[dict[str, Any]] = src.stream(_select(table, key))
            if table == "reps":
                rows = _reps_in_order(rows)
            digest, insert = _Digest(), ""
            columns: list[str] = []
            batch: list[list[Any]] = []
            for row in rows:
                if not columns:
                    columns = list(row)
                    insert = (f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
                              f"VALUES ({', '.join('?' * len(columns))})")
                batch.append([row[c] for c in columns])
                if table != "reps":  # reps are digested in key order, below
                    digest.add(row)
                if len(batch) >= BATCH:
                    dst.executemany(insert, batch)
                    done += len(batch)
                    batch = []
                    if progress:
                        progress(table, done, total)
            if batch:
                dst.executemany(insert, batch)
                done += len(batch)
            if progress:
                progress(table, done, total)
            if table == "reps":
                report.tables[table], report.digests[table] = table_digest(src, table)
            else:
                report.tables[table], report.digests[table] = digest.count, digest.hash.hexdigest()
            if report.tables[table] != totals[table]:  # the snapshot moved: a bug, not a race
                raise ArchiveError("copy_mismatch", f"read {report.tables[table]} rows of "
                                   f"{table} from the source, expected {totals[table]}")
        for table, column in GENERATED:
            mark = high_water(src, table, column)
            set_high_water(dst, table, column, mark)
            report.sequences[f"{table}.{column}"] = mark
        _verify(dst, report, where)
        if check is not None:
            check(dst)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _verify(dst: Tx, report: CopyReport, where: str) -> None:
    """The target's rows, read back inside the copy's transaction, equal the source's."""
    for table in TABLE_NAMES:
        rows, digest = table_digest(dst, table)
        if (rows, digest) != (report.tables[table], report.digests[table]):
            raise ArchiveError("copy_mismatch", (
                f"{table} on the target {where} does not equal the source's after copying "
                f"({rows} rows vs {report.tables[table]}): nothing was written"))
    for table, column in GENERATED:
        if high_water(dst, table, column) != report.sequences[f"{table}.{column}"]:
            raise ArchiveError("copy_mismatch", f"the target's {table}.{column} sequence did "
                               "not take the source's position: nothing was written")


__all__ = ["BATCH", "GENERATED", "TABLES", "TABLE_NAMES", "CopyReport", "Progress",
           "archive_digests", "check_tables", "copy_archive", "data_tables", "ensure_empty",
           "high_water", "nonempty_tables", "schema_tables", "set_high_water", "table_digest"]
