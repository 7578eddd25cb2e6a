"""Epochs: the archive's identity, changed after a restore and read fresh every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.rules import Archive, open_archive

from .kit import Ctx, Stores


def test_an_archive_has_an_epoch_from_its_first_day(archive: Archive) -> None:
    epoch = archive.epoch
    assert len(epoch) == 32 and archive.current_epoch() == epoch
    archive.ping()
    Archive.initialize(archive.engine)  # idempotent: the identity stays
    assert archive.epoch == epoch


def test_a_new_epoch_is_seen_by_every_worker_at_once(archive: Archive, tmp_path: Path,
                                                     stores: Stores,
                                                     request: pytest.FixtureRequest) -> None:
    # a second worker: its own engine on the same storage
    url = request.getfixturevalue("pg_url") if archive.engine.kind == "postgresql" else None
    other = open_archive(tmp_path / "server", url=url)
    before = other.epoch
    new = archive.start_new_epoch("restored from the replica of 09:00")
    assert new != before and other.epoch == new == archive.epoch  # never cached
    with stores.read() as s:
        assert s.meta("epoch_note").endswith("restored from the replica of 09:00")
    entry = archive.audit_entries()[-1]
    assert (entry["action"], entry["subject"]) == ("archive.new_epoch", new)
    other.close()


def test_counts_cover_the_archives_tables(ctx: Ctx) -> None:
    ctx.customer(ctx.a)
    with ctx.stores.read() as s:
        counts = s.counts()
    assert counts == ctx.archive.counts() == {"reps": 2, "devices": 2, "customers": 1, "visits": 0,
                                              "conflicts": 0, "quarantine": 0}
    assert all(type(n) is int for n in counts.values())
