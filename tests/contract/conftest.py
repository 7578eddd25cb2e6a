"""Fixtures of the contract suite: every test runs once per backend.

`archive` is a fresh archive (SQLite file, or a PostgreSQL database copied from the
migrated template) on a `ManualClock`; `stores` opens the archive's own engine
transactions and hands out `SqlStore`s, so store methods are tested directly too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schema.clock import ManualClock
from server.rules import Archive, init_archive

from .kit import BACKENDS, T0, Ctx, Stores, enroll_device


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def archive(request: pytest.FixtureRequest, backend: str, tmp_path: Path,
            clock: ManualClock) -> Iterator[Archive]:
    # pg_url only for PostgreSQL: a SQLite run never starts the cluster.
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    opened = init_archive(tmp_path / "server", clock, url=url)
    assert opened.engine.kind == backend
    yield opened
    opened.close()  # before pg_url drops the database


@pytest.fixture
def stores(archive: Archive) -> Stores:
    return Stores(archive)


@pytest.fixture
def ctx(archive: Archive, clock: ManualClock, stores: Stores) -> Ctx:
    """Two reps, each with one enrolled laptop."""
    rep_a = archive.add_rep("Rep A", None, "senior")["id"]
    rep_b = archive.add_rep("Rep B", None, "junior")["id"]
    return Ctx(archive, clock, stores, enroll_device(archive, rep_a), enroll_device(archive, rep_b))
