"""The engine under the stores: transactions over portable SQL (server/archive/engine.py)."""

from __future__ import annotations

import threading

import pytest

from server.archive.engine import UniqueViolation
from server.rules import Archive, open_archive

from .kit import Stores


def test_tx_statements_and_types(stores: Stores) -> None:
    with stores.engine.write() as tx:
        assert tx.dialect == stores.engine.kind
        tx.executemany("INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?,?,?)",
                       [("d", "n1", 1.5), ("d", "n2", 2.5), ("e", "n3", 3.0)])
        assert tx.execute("DELETE FROM nonces WHERE device_id=?", ("e",)) == 1
        assert tx.execute("UPDATE nonces SET seen_at=seen_at+1 WHERE device_id='d'") == 2
    with stores.engine.read() as tx:
        assert tx.rows("SELECT nonce, seen_at FROM nonces ORDER BY nonce") == [
            {"nonce": "n1", "seen_at": 2.5}, {"nonce": "n2", "seen_at": 3.5}]
        assert tx.one("SELECT nonce FROM nonces WHERE nonce=?", ("n2",)) == {"nonce": "n2"}
        assert tx.tuples("SELECT nonce, seen_at FROM nonces WHERE seen_at>? ORDER BY nonce",
                         (3,)) == [("n2", 3.5)]
        assert tx.one("SELECT nonce FROM nonces WHERE nonce='none'") is None
        assert tx.scalar("SELECT count(*) FROM nonces") == 2
        assert type(tx.scalar("SELECT sum(seen_at) FROM nonces")) is float
        assert type(tx.scalar("SELECT count(*) FROM nonces")) is int
        assert tx.scalar("SELECT nonce FROM nonces WHERE nonce='none'") is None
        streamed = tx.stream("SELECT nonce FROM nonces ORDER BY nonce")
        assert [r["nonce"] for r in streamed] == ["n1", "n2"]
        # a literal % and a ? inside quotes are text, not placeholders
        assert tx.scalar("SELECT '100% sure?' || ?", ("!",)) == "100% sure?!"


def test_write_commits_whole_or_not_at_all(stores: Stores) -> None:
    with pytest.raises(ZeroDivisionError), stores.engine.write() as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
        _ = 1 / 0
    with pytest.raises(UniqueViolation), stores.engine.write() as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('b', '1')")
        tx.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")
    with stores.engine.read() as tx:
        assert tx.rows("SELECT key FROM meta WHERE key IN ('a', 'b')") == []


def test_deferred_writes_run_by_rank_before_the_next_statement_and_commit(stores: Stores) -> None:
    insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
    with stores.engine.write() as tx:
        tx.defer("UPDATE meta SET value = value || '+' WHERE key = ?", ("d1",))
        tx.defer(insert, ("d1", "a"), rank=0)  # ranked first: the update finds its row
        tx.defer(insert, ("d2", "b"), rank=0)
        # a read sees what was deferred before it
        assert tx.rows("SELECT key, value FROM meta WHERE key IN ('d1', 'd2') ORDER BY key") == [
            {"key": "d1", "value": "a+"}, {"key": "d2", "value": "b"}]
        tx.defer(insert, ("d3", "c"))  # left for the commit
    with stores.engine.read() as tx:
        assert tx.scalar("SELECT value FROM meta WHERE key = 'd3'") == "c"
    # a deferred duplicate fails the transaction at its commit: nothing of it is kept
    with pytest.raises(UniqueViolation), stores.engine.write() as tx:
        tx.execute(insert, ("d4", "x"))
        tx.defer(insert, ("d1", "again"))
    with stores.engine.read() as tx:
        assert tx.scalar("SELECT count(*) FROM meta WHERE key IN ('d4')") == 0
        assert tx.scalar("SELECT value FROM meta WHERE key = 'd1'") == "a+"


def test_a_read_is_one_snapshot(stores: Stores) -> None:
    def write() -> None:
        with stores.engine.write() as tx:
            tx.execute("INSERT INTO meta (key, value) VALUES ('late', '1')")

    with stores.engine.read() as tx:
        before = tx.scalar("SELECT count(*) FROM meta")
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=30)
        assert not writer.is_alive()
        assert tx.scalar("SELECT count(*) FROM meta") == before
    with stores.engine.read() as tx:
        assert tx.scalar("SELECT count(*) FROM meta") == before + 1


def test_job_lock_has_one_holder(stores: Stores) -> None:
    engine = stores.engine
    with engine.job_lock("sweeper") as first, engine.job_lock("sweeper") as second:
        assert (bool(first), bool(second)) == (True, False)
        with engine.job_lock("other job") as other:
            assert other
    with engine.job_lock("sweeper") as again:
        assert again


def test_describe_names_the_archive_without_secrets_and_close_releases(
        archive: Archive, request: pytest.FixtureRequest, tmp_path: object) -> None:
    where = archive.engine.describe()
    assert where.startswith(f"{archive.engine.kind}://")
    if archive.engine.kind == "postgresql":
        url = request.getfixturevalue("pg_url")
        password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        assert password not in where
    else:
        url = None
    second = open_archive(archive.data_dir, url=url)
    assert second.epoch == archive.epoch
    second.engine.close()
    assert archive.epoch  # the first engine is untouched
