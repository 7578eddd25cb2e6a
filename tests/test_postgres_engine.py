"""The PostgreSQL engine on a real throwaway cluster: migrations, history rules in the
database, type parity with SQLite, error mapping, serial writers, job locks, opening."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from sqlite_utils import Database

from schema.migrations import server as sqlite_migrations
from schema.migrations import server_pg
from server.archive import engine
from server.archive.errors import ArchiveError, StorageError, Unavailable
from server.archive.postgres import PgTx, PostgresEngine, translate
from server.archive.url import parse_archive_url, redact

from .pgcluster import PgCluster

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 10.0  # bound on every wait for another thread or process


def _eventually(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def pg(pg_url: str):
    eng = PostgresEngine.open(pg_url)
    yield eng
    eng.close()


def _sqlite_archive() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    sqlite_migrations.migrations.apply(Database(conn))
    conn.row_factory = sqlite3.Row
    return conn


# --- migrations -----------------------------------------------------------------------


def test_migrations_apply_once_and_match_sqlite_columns(pg_empty_url: str) -> None:
    assert PostgresEngine.migrate(pg_empty_url) == list(server_pg.KNOWN)
    assert PostgresEngine.migrate(pg_empty_url) == []  # idempotent
    assert server_pg.KNOWN == tuple(m.name for m in sqlite_migrations.migrations._migrations)

    lite = _sqlite_archive()
    tables = [r[0] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name != '_sqlite_migrations' ORDER BY name")]
    with psycopg.connect(pg_empty_url) as conn:
        pg_tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public' "
            "AND table_name != 'fieldvault_migrations' ORDER BY table_name COLLATE \"C\"")]
        assert pg_tables == tables
        for table in tables:
            lite_cols = [(r["name"], bool(r["notnull"]) or bool(r["pk"]))
                         for r in lite.execute(f"PRAGMA table_info({table})")]
            pg_cols = [(r[0], r[1] == "NO") for r in conn.execute(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s ORDER BY ordinal_position", (table,))]
            assert pg_cols == lite_cols, table
        meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta == dict(lite.execute("SELECT key, value FROM meta").fetchall())


def test_concurrent_init_from_two_processes_applies_each_migration_once(pg_empty_url: str) -> None:
    code = ("import sys; from server.archive.postgres import PostgresEngine; print('ready', flush=True); "
            "applied = PostgresEngine.migrate(sys.stdin.readline().strip()); print(len(applied))")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for p in procs:  # both imported and waiting: the URL then reaches them together
            assert p.stdout and p.stdout.readline().strip() == "ready"
        for p in procs:  # through stdin, not argv: a password in a process listing is readable
            assert p.stdin
            p.stdin.write(pg_empty_url + "\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    # Between them they applied each migration once (which one did which is a race).
    assert sum(int(out) for out, _err in outs) == len(server_pg.KNOWN)
    with psycopg.connect(pg_empty_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM fieldvault_migrations ORDER BY name")]
    assert names == sorted(server_pg.KNOWN)


def test_open_refuses_missing_outdated_and_newer_schemas(pg_empty_url: str, pg_cluster: PgCluster) -> None:
    with pytest.raises(Unavailable) as empty:
        PostgresEngine.open(pg_empty_url)
    assert empty.value.code == "not_initialized"
    assert "fieldvault-server init --archive" in empty.value.message

    # An archive made by an older server: every migration but the last.
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute(server_pg._LEDGER)
        for name, ddl in server_pg.MIGRATIONS[:-1]:
            with conn.transaction():
                conn.execute(ddl)
                conn.execute("INSERT INTO fieldvault_migrations VALUES (%s, 'then')", (name,))
    with pytest.raises(Unavailable) as behind:
        PostgresEngine.open(pg_empty_url)
    assert behind.value.code == "schema_outdated"
    newest = server_pg.MIGRATIONS[-1][0]
    assert newest in behind.value.message
    assert pg_cluster.password not in behind.value.message
    assert PostgresEngine.migrate(pg_empty_url) == [newest]
    PostgresEngine.open(pg_empty_url).close()

    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("INSERT INTO fieldvault_migrations VALUES ('m999_from_the_future', 'x')")
    for attempt in (PostgresEngine.open, PostgresEngine.init):
        with pytest.raises(Unavailable) as ahead:
            attempt(pg_empty_url)
        assert ahead.value.code == "schema_too_new"
        assert "upgrade this server" in ahead.value.message


# --- history rules in the database --------------------------------------------------


def _seed_history(tx: engine.Tx) -> None:
    now = "2024-01-01T00:00:00Z"
    tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_a', 'Ann', ?)", (now,))
    tx.execute("INSERT INTO customers (id, rev, card_no, name, created_by, created_at, ownership_source, "
               "updated_at) VALUES ('c1', 1, 'K-1', 'Acme', 'admin', ?, 'admin', ?)", (now, now))
    tx.execute("INSERT INTO customer_revisions (customer_id, rev, server_seq, snapshot, author, at) "
               "VALUES ('c1', 1, 1, '{}', 'admin', ?)", (now,))
    tx.execute("INSERT INTO visits (id, rev, customer_id, rep_id, started_at, purpose, summary, status, "
               "created_at, updated_at) VALUES ('v1', 1, 'c1', 'rep_a', ?, 'p', 's', 'active', ?, ?)",
               (now, now, now))
    tx.execute("INSERT INTO visit_revisions (visit_id, rev, server_seq, snapshot, author, at) "
               "VALUES ('v1', 1, 2, '{}', 'rep_a', ?)", (now,))
    tx.execute("INSERT INTO ownership (customer_id, to_rep_id, source, by, at) "
               "VALUES ('c1', 'rep_a', 'admin', 'admin', ?)", (now,))
    tx.execute("INSERT INTO quarantine (op_id, device_id, rep_id, kind, entity_id, payload, reason, at) "
               "VALUES ('op1', 'd1', 'rep_a', 'visit', 'v9', '{}', 'scope', ?)", (now,))
    tx.execute("INSERT INTO audit_log (seq, at, actor, action, prev_hash, hash) "
               "VALUES (1, ?, 'admin', 'x', '0', 'h')", (now,))


REFUSED = [
    "DELETE FROM customers",
    "DELETE FROM visits",
    "DELETE FROM quarantine",
    "UPDATE customer_revisions SET author = 'x'",
    "DELETE FROM customer_revisions",
    "UPDATE visit_revisions SET author = 'x'",
    "DELETE FROM visit_revisions",
    "UPDATE ownership SET reason = 'x'",
    "DELETE FROM ownership",
    "UPDATE audit_log SET actor = 'x'",
    "DELETE FROM audit_log",
    *(f"TRUNCATE {t} CASCADE" for t in ("customers", "visits", "quarantine", "customer_revisions",
                                         "visit_revisions", "ownership", "audit_log")),
]


def test_history_tables_refuse_delete_update_and_truncate(pg: PostgresEngine) -> None:
    with pg.write() as tx:
        _seed_history(tx)
    tables = ["customers", "visits", "quarantine", "customer_revisions", "visit_revisions",
              "ownership", "audit_log"]
    with pg.read() as tx:
        before = {t: tx.rows(f"SELECT * FROM {t}") for t in tables}
    for statement in REFUSED:
        with pytest.raises(pg_errors.RestrictViolation), pg.write() as tx:
            tx.execute(statement)
    with pg.read() as tx:
        assert {t: tx.rows(f"SELECT * FROM {t}") for t in tables} == before
    with pg.write() as tx:  # what is allowed stays allowed
        assert tx.execute("UPDATE customers SET rev = 2 WHERE id = 'c1'") == 1
        assert tx.execute("UPDATE quarantine SET reviewed_at = 'now' WHERE op_id = 'op1'") == 1


# --- the Tx adapter ---------------------------------------------------------------------

PARITY_SETUP = [
    ("INSERT INTO reps (id, name, active, created_at) VALUES (?, ?, ?, ?)", ("rep_a", "Ann 50%", True, "t0")),
    ("INSERT INTO reps (id, name, manager_id, tier, created_at) VALUES (?, ?, ?, ?, ?)",
     ("rep_b", "Bob?", "rep_a", "senior", "t1")),
    ("INSERT INTO devices (id, rep_id, sign_public_key, box_public_key, enrolled_at, lease_secret) "
     "VALUES (?, ?, ?, ?, ?, ?)", ("dev_1", "rep_a", b"\x00\xffsign", bytes(range(32)), "t2", None)),
    ("INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?, ?, ?)", ("dev_1", "n1", 1712345678.125)),
    ("INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?, ?, ?)", ("dev_1", "n2", 2.0)),
    ("INSERT INTO feed (rep_id, kind, entity_id, customer_id) VALUES (?, 'grant', ?, ?)",
     ("rep_a", "c1", "c1")),
    ("INSERT INTO feed (rep_id, kind, entity_id, customer_id) VALUES (NULL, 'evict', ?, ?)", ("c2", "c2")),
]

PARITY_QUERIES = [
    ("SELECT * FROM reps ORDER BY id", ()),
    ("SELECT * FROM devices", ()),
    ("SELECT * FROM nonces ORDER BY nonce", ()),
    ("SELECT * FROM feed ORDER BY seq", ()),
    ("SELECT count(*) AS n, sum(seen_at) AS total, avg(seen_at) AS mean FROM nonces", ()),
    ("SELECT sum(seq) AS s, avg(seq) AS a, max(seq) AS m, min(rep_id) AS r FROM feed", ()),
    ("SELECT name FROM reps WHERE name LIKE '%\\%%' ESCAPE '\\' OR name = ?", ("Bob?",)),
    ("SELECT coalesce(lease_secret, ?) AS s, last_seq + ? AS n FROM devices", (b"x", 2)),
    ("SELECT id FROM reps ORDER BY id LIMIT ? OFFSET ?", (1, 1)),
    # No limit: SQLite refuses LIMIT NULL, PostgreSQL refuses LIMIT -1; both take the largest int.
    ("SELECT id FROM reps ORDER BY id LIMIT ?", (2**63 - 1,)),
    ("SELECT value FROM meta WHERE key = ?", ("offline_block_hours",)),
]


def test_rows_come_back_with_sqlite_types(pg: PostgresEngine) -> None:
    lite = _sqlite_archive()
    with pg.write() as tx:
        for sql, params in PARITY_SETUP:
            assert tx.execute(sql, params) == 1
            lite.execute(sql, params)
    with pg.read() as tx:
        for sql, params in PARITY_QUERIES:
            got = tx.rows(sql, params)
            want = [dict(r) for r in lite.execute(sql, params)]
            assert got == want, sql
            assert [{k: type(v) for k, v in r.items()} for r in got] == \
                   [{k: type(v) for k, v in r.items()} for r in want], sql
        assert tx.one("SELECT * FROM reps WHERE id = ?", ("nobody",)) is None
        assert tx.scalar("SELECT id FROM reps WHERE id = ?", ("nobody",)) is None
        assert tx.scalar("SELECT count(*) AS n FROM reps") == 2
        assert tx.dialect == "postgresql"


def test_stream_reads_rows_as_consumed_and_fails_at_once(pg: PostgresEngine) -> None:
    with pg.write() as tx:
        tx.executemany("INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?, ?, ?)",
                       [("d", f"n{i:05d}", float(i)) for i in range(2000)])
    with pg.read() as tx:
        it = tx.stream("SELECT nonce, seen_at FROM nonces ORDER BY nonce")
        first = next(it)
        assert first == {"nonce": "n00000", "seen_at": 0.0}
        assert sum(1 for _ in it) == 1999
        with pytest.raises(pg_errors.UndefinedTable):
            tx.stream("SELECT * FROM no_such_table")


def test_unique_violation_is_mapped_and_the_transaction_writes_nothing(pg: PostgresEngine) -> None:
    with pytest.raises(engine.UniqueViolation) as exc, pg.write() as tx:
        tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_1', 'Ann', 't')")
        tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_2', 'Ann', 't')")
    assert "reps_name" in str(exc.value)
    # A caller that swallows it and goes on is told: PostgreSQL lost the whole transaction.
    with pytest.raises(RuntimeError, match="rolled the whole transaction back"), pg.write() as tx:
        tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_3', 'Cy', 't')")
        try:
            tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_3', 'Cy', 't')")
        except engine.UniqueViolation:
            pass
    with pg.read() as tx:
        assert tx.rows("SELECT id FROM reps") == []
    # The portable way to insert-if-absent.
    with pg.write() as tx:
        sql = "INSERT INTO reps (id, name, created_at) VALUES ('rep_4', 'Di', 't') ON CONFLICT DO NOTHING"
        assert tx.execute(sql) == 1
        assert tx.execute(sql) == 0


def test_write_that_raises_writes_nothing(pg: PostgresEngine) -> None:
    with pytest.raises(ValueError), pg.write() as tx:
        tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_1', 'Ann', 't')")
        tx.execute("INSERT INTO feed (rep_id, kind, entity_id, customer_id) VALUES ('rep_1','grant','c','c')")
        raise ValueError("a rule said no")
    with pg.read() as tx:
        assert tx.scalar("SELECT count(*) AS n FROM reps") == 0
        assert tx.scalar("SELECT count(*) AS n FROM feed") == 0


def test_read_is_one_snapshot_and_read_only(pg_url: str, pg: PostgresEngine) -> None:
    other = PostgresEngine.open(pg_url)
    try:
        with pg.read() as tx:
            assert tx.scalar("SELECT count(*) AS n FROM reps") == 0
            with other.write() as wtx:
                wtx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_1', 'Ann', 't')")
            assert tx.scalar("SELECT count(*) AS n FROM reps") == 0  # still the first snapshot
        with pg.read() as tx:
            assert tx.scalar("SELECT count(*) AS n FROM reps") == 1
            with pytest.raises(pg_errors.ReadOnlySqlTransaction):
                tx.execute("DELETE FROM reps")
    finally:
        other.close()


def test_translate_rewrites_placeholders_outside_quotes_and_escapes_percent() -> None:
    assert translate("SELECT ? , '?', \"a?\" FROM t WHERE x LIKE '5%' AND y = ?") == \
        "SELECT %s , '?', \"a?\" FROM t WHERE x LIKE '5%%' AND y = %s"
    assert translate("SELECT 1 -- what? 100%\n, ?") == "SELECT 1 -- what? 100%%\n, %s"
    assert translate("SELECT /* ? */ ?") == "SELECT /* ? */ %s"
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


# --- serial writers: feed numbers in commit order ------------------------------------------


def _feed_insert(tx: engine.Tx, entity: str) -> int:
    return int(tx.scalar("INSERT INTO feed (rep_id, kind, entity_id, customer_id) "
                         "VALUES ('rep_a', 'customer', ?, ?) RETURNING seq", (entity, entity)))


def _lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND NOT granted AND database = (SELECT oid FROM pg_database "
                           "WHERE datname = current_database())").fetchone()
    return int(row[0]) if row else 0


def _race(url: str, serial: bool) -> tuple[list[tuple[str, int]], list[str], int]:
    """Writer A inserts a feed row and holds its transaction open; writer B (another engine,
    as another worker process would be) then writes. Returns each writer's seq, the
    order in which they committed, and how many feed rows B saw before its insert."""
    a_eng, b_eng = PostgresEngine.open(url), PostgresEngine.open(url)
    seqs: list[tuple[str, int]] = []
    commits: list[str] = []
    a_inserted, release_a, b_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []
    b_saw: list[int] = []

    def writer_a() -> None:
        try:
            with a_eng.write(serial=serial) as tx:
                seqs.append(("A", _feed_insert(tx, "a")))
                a_inserted.set()
                assert release_a.wait(WAIT_S)
            commits.append("A")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def writer_b() -> None:
        try:
            assert a_inserted.wait(WAIT_S)
            with b_eng.write(serial=serial) as tx:
                b_saw.append(int(tx.scalar("SELECT count(*) AS n FROM feed")))
                seqs.append(("B", _feed_insert(tx, "b")))
            commits.append("B")
            b_done.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    try:
        for t in threads:
            t.start()
        assert a_inserted.wait(WAIT_S)
        if serial:
            # B is provably parked on the write lock while A is open, not merely slow.
            _eventually(lambda: _lock_waiters(url) == 1, "writer B to wait for the write lock")
            assert not b_done.is_set()
        else:
            assert b_done.wait(WAIT_S)  # nothing holds B back
        release_a.set()
        for t in threads:
            t.join(WAIT_S)
            assert not t.is_alive()
    finally:
        release_a.set()
        a_eng.close()
        b_eng.close()
    assert not errors, errors
    return seqs, commits, b_saw[0]


def test_serial_writers_commit_in_feed_sequence_order(pg_url: str) -> None:
    seqs, commits, b_saw = _race(pg_url, serial=True)
    assert commits == ["A", "B"]
    assert dict(seqs)["A"] < dict(seqs)["B"]
    # B's statements, run after the wait, see what A committed (READ COMMITTED): a
    # check-then-insert such as "was this op_id applied?" finds the first worker's row.
    assert b_saw == 1


def test_without_the_lock_a_higher_seq_can_commit_first(pg_url: str) -> None:
    # The hazard serial writes exist for: B takes a higher number but commits first, so a
    # pull between the two commits would move a cursor past A's lower number.
    seqs, commits, b_saw = _race(pg_url, serial=False)
    assert commits == ["B", "A"]
    assert b_saw == 0
    assert dict(seqs)["A"] < dict(seqs)["B"]


# --- job locks ---------------------------------------------------------------------------

HOLDER = """
import sys
from server.archive.postgres import PostgresEngine
eng = PostgresEngine(sys.stdin.readline().strip())
with eng.job_lock("revocations") as held:
    print("held" if held else "busy", flush=True)
    sys.stdin.readline()
"""


def test_job_lock_is_exclusive_and_released(pg_url: str, pg: PostgresEngine) -> None:
    other = PostgresEngine.open(pg_url)
    try:
        with pg.job_lock("revocations") as first:
            assert first and first.alive()
            with other.job_lock("revocations") as second:
                assert not second and not second.alive()
            with other.job_lock("hr-inbox") as unrelated:
                assert unrelated
            with pg.write() as tx:  # the write lock is a different key
                _feed_insert(tx, "x")
        with other.job_lock("revocations") as after:
            assert after
    finally:
        other.close()


def test_job_lock_of_a_killed_process_is_free_again(pg_url: str, pg: PostgresEngine) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(pg_url + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "held"
        with pg.job_lock("revocations") as held:
            assert not held
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT_S)

        def free() -> bool:
            with pg.job_lock("revocations") as got:
                return bool(got)
        _eventually(free, "the dead holder's lock to be released")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)


# --- opening, errors, addresses ------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong_password", "closed_port", "missing_db"])
def test_open_of_a_bad_url_fails_fast_without_the_password(case: str, pg_cluster: PgCluster,
                                                           pg_url: str) -> None:
    secret = "Sup3r-Secret-pw"
    dbname = pg_url.rsplit("/", 1)[1]
    if case == "wrong_password":
        url = pg_cluster.url(dbname, password=secret)
    elif case == "closed_port":
        url = f"postgresql://fieldvault:{secret}@127.0.0.1:1/{dbname}"
    else:  # the role's right password, a database that is not there
        secret = pg_cluster.password
        url = pg_cluster.url("no_such_db")
    started = time.monotonic()
    with pytest.raises(StorageError) as exc:
        PostgresEngine.open(url)
    assert time.monotonic() - started < 5
    message = str(exc.value)
    assert secret not in message
    assert message.startswith("cannot reach the archive at postgresql://fieldvault:***@127.0.0.1:")
    assert message.endswith("; check --archive")
    assert {"wrong_password": "password authentication failed",
            "closed_port": "Connection refused",
            "missing_db": 'database "no_such_db" does not exist'}[case] in message
    assert "\n" not in message


def test_lost_connections_are_replaced_and_describe_hides_the_password(
        pg: PostgresEngine, pg_cluster: PgCluster, pg_url: str) -> None:
    assert pg.describe() == pg_url.replace(pg_cluster.password, "***")
    assert pg_cluster.password not in pg.describe()
    with pg.write() as tx:
        _feed_insert(tx, "before")
    # A server restart or failover drops every connection the pool holds.
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (pg_url.rsplit("/", 1)[1],))
    with pg.write() as tx:
        _feed_insert(tx, "after")
    with pg.read() as tx:
        assert tx.scalar("SELECT count(*) AS n FROM feed") == 2


def _terminate_pool(pg_cluster: PgCluster, pg_url: str) -> None:
    """What a server restart or a failover does to every connection the pool holds."""
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (pg_url.rsplit("/", 1)[1],))


def test_a_one_statement_read_sends_one_statement_and_no_transaction(pg: PostgresEngine) -> None:
    with pg.write() as tx:
        _feed_insert(tx, "one")
    with pg.read(one_statement=True) as tx:
        assert tx.scalar("SELECT count(*) AS n FROM feed") == 1
        # No BEGIN was sent, and none is left open for COMMIT to close.
        assert isinstance(tx, PgTx)
        assert tx.conn.info.transaction_status == TransactionStatus.IDLE
        with pytest.raises(RuntimeError, match="second statement"):
            tx.scalar("SELECT count(*) AS n FROM feed")
    with pg.read(one_statement=True) as tx:  # a write would commit on its own: refused
        with pytest.raises(RuntimeError, match="outside a transaction"):
            tx.execute("DELETE FROM feed")
    with pg.read(one_statement=True) as tx, pytest.raises(RuntimeError):
        tx.stream("SELECT * FROM feed")
    with pg.read() as tx:
        assert tx.scalar("SELECT count(*) AS n FROM feed") == 1


def test_connections_lost_while_idle_are_replaced_for_every_kind_of_transaction(
        pg_cluster: PgCluster, pg_url: str) -> None:
    """The pool does not check a connection before handing it out: the transaction's
    first statement finds a dead one, before anything was done, and it is replaced."""
    eng = PostgresEngine.open(pg_url, min_size=3)
    try:
        with eng.write() as tx:
            _feed_insert(tx, "before")
        kinds = [lambda: eng.read(one_statement=True), eng.read,
                 lambda: eng.write(serial=False, durable=False), eng.write]
        for i, kind in enumerate(kinds):
            _terminate_pool(pg_cluster, pg_url)
            time.sleep(0.2)  # the terminated backends' goodbyes have reached the sockets
            with kind() as tx:
                if i < 2:
                    assert tx.scalar("SELECT count(*) AS n FROM feed") == 1
                else:
                    assert tx.execute("UPDATE feed SET kind = kind WHERE entity_id = 'before'") == 1
        with eng.read() as tx:
            assert tx.scalar("SELECT count(*) AS n FROM feed") == 1
    finally:
        eng.close()


def test_a_terminated_transaction_is_a_storage_error(pg: PostgresEngine, pg_cluster: PgCluster) -> None:
    with pytest.raises(StorageError) as exc, pg.write() as tx:
        pid = tx.scalar("SELECT pg_backend_pid() AS pid")
        with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        tx.execute("INSERT INTO reps (id, name, created_at) VALUES ('rep_1', 'Ann', 't')")
    assert pg_cluster.password not in str(exc.value)
    with pg.read() as tx:
        assert tx.scalar("SELECT count(*) AS n FROM reps") == 0


def test_archive_urls(tmp_path: Path) -> None:
    assert parse_archive_url(None, tmp_path).path == tmp_path / "archive.db"
    assert parse_archive_url("", tmp_path).kind == "sqlite"
    lite = parse_archive_url("sqlite:///srv/fv/archive.db", tmp_path)
    assert (lite.kind, lite.path, lite.dsn) == ("sqlite", Path("/srv/fv/archive.db"), None)
    pg = parse_archive_url("postgres://fv:pw@db.example:5433/fieldvault?sslmode=require", tmp_path)
    assert pg.kind == "postgresql"
    assert pg.dsn == "postgresql://fv:pw@db.example:5433/fieldvault?sslmode=require"
    assert pg.describe() == "postgresql://fv:***@db.example:5433/fieldvault?sslmode=require"
    assert redact("postgresql://fv@h/db?password=pw&sslmode=require") == \
        "postgresql://fv@h/db?password=***&sslmode=require"
    assert redact("postgresql://h/db") == "postgresql://h/db"
    for bad in ["mysql://u:hunter2@h/db", "sqlite://relative.db", "sqlite:///", "/srv/archive.db",
                "postgresql://u:hunter2@h:notaport/db", "postgresql://u:hunter2@h:5432/"]:
        with pytest.raises(ArchiveError) as exc:
            parse_archive_url(bad, tmp_path)
        assert exc.value.code == "invalid_archive_url"
        assert "hunter2" not in exc.value.message


def test_a_job_lock_lost_with_its_session_says_so(pg_url: str, pg: PostgresEngine) -> None:
    """A database restart or a cut connection frees the lock without a word to the holder:
    `alive()` must notice, so two processes never both believe they run the jobs."""
    other = PostgresEngine.open(pg_url)
    try:
        with pg.job_lock("jobs") as lock:
            assert lock.alive()
            with other.write() as tx:  # what a restart does to the holder's session
                tx.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                           "locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")
            assert not lock.alive() and not lock
            with other.job_lock("jobs") as taken_over:
                assert taken_over.alive()
    finally:
        other.close()
