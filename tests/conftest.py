from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from . import harness, pgcluster
from .browser import chromium  # noqa: F401  (the session-wide browser for page tests)
from .harness import Backend, ServerProcess, init_server
from .pgcluster import PgCluster

# --- pytest-xdist: long files first -----------------------------------------------------

# ./scripts/test runs the suite on two pytest-xdist workers, a whole file per worker
# (--dist loadfile, so a module's shared server starts once). Files that take a minute
# or more on the 2-core CI machine start first, so no worker is left running one of
# them alone at the end. Only the order of files changes, and only under xdist: tests
# within a file keep their order, and a plain `pytest` run keeps collection order.
# Longest first, from a full run's per-file times (junit, 2026-12-02).
LONG_FILES = ("test_conformance.py", "test_exactly_once.py", "test_rep_week.py",
              "test_archive_url.py", "test_fleet.py", "test_agent_rules.py",
              "test_agent_rules_e2e.py", "test_fault_proxy.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "server"
    init_server(data)
    return data


@pytest.fixture
def server(data_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


# --- PostgreSQL: one throwaway cluster per session (tests/pgcluster.py) ---------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = pgcluster.start()
    except pgcluster.PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)  # CI installs PostgreSQL: never skip
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A migrated database to copy: CREATE DATABASE ... TEMPLATE is faster than migrating."""
    from server.archive.postgres import PostgresEngine

    url = pg_cluster.create_db(pgcluster.TEMPLATE_DB)
    PostgresEngine.migrate(url)
    return pgcluster.TEMPLATE_DB


@pytest.fixture
def pg_url(pg_cluster: PgCluster, pg_template: str) -> Iterator[str]:
    """A fresh database with the archive schema applied (no epoch yet), dropped afterwards."""
    name = pg_cluster.new_name()
    yield pg_cluster.create_db(name, template=pg_template)
    pg_cluster.drop_db(name)


@pytest.fixture
def pg_empty_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh empty database (for init and migration tests), dropped afterwards."""
    name = pg_cluster.new_name()
    yield pg_cluster.create_db(name)
    pg_cluster.drop_db(name)


# --- one test body, every backend -------------------------------------------------------


BACKENDS = ["sqlite", "postgresql-2w"]


@contextmanager
def _backend(request: pytest.FixtureRequest, data: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        init_server(data)
        yield Backend("sqlite", data, None, 1)
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = cluster.new_name()
    url = cluster.create_db(name, template=request.getfixturevalue("pg_template"))
    try:
        init_server(data, archive_url=url)  # the real CLI: epoch, keys
        yield Backend("postgresql-2w", data, url, 2)
    finally:
        harness.forget_archive(data)
        cluster.drop_db(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An initialized archive on each backend in turn (no server running)."""
    with _backend(request, tmp_path / "server") as found:
        yield found


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """`backend` shared by a module's tests (for a module-wide server)."""
    with _backend(request, tmp_path_factory.mktemp("backend") / "server") as found:
        yield found
