"""`fieldvault-server migrate-archive`: moving a SQLite archive to PostgreSQL (issue 9).

The whole archive (history, conflicts, quarantine, a departure with its wipe order,
the audit chain, devices, leases, the epoch) is copied by the real CLI into a real
PostgreSQL database; the copy equals the source table by table, its audit chain
verifies, and an agent enrolled before the move syncs against the real server on the
new archive with no re-enrollment, nothing lost and nothing twice. Bad input (an
unreachable database, a wrong password, a target holding data or another schema, the
source itself) is one `error:` line, a non-zero exit, and nothing written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from schema.models import CustomerCreate
from server.archive import copy
from server.archive.postgres import PostgresEngine
from server.rules import init_archive, open_archive

from . import harness
from .harness import AGENT, SERVER, ServerProcess, agent_cli, free_port, run, server_cli
from .pgcluster import PgCluster


def migrate(data: Path, to_url: str, from_url: str | None = None,
            check: bool = True) -> Any:
    """`fieldvault-server migrate-archive --json`, the URLs passed through the environment
    (as an operator keeps a password out of process listings)."""
    env = {"FIELDVAULT_MIGRATE_TO": to_url}
    if from_url is not None:
        env["FIELDVAULT_MIGRATE_FROM"] = from_url
    proc = subprocess.run([SERVER, "migrate-archive", "--data", str(data), "--json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1", **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"migrate-archive exited {proc.returncode}:\n{proc.stderr}")
    return json.loads(proc.stdout) if proc.returncode == 0 else proc


def digests(url: str | None, data: Path) -> dict[str, tuple[int, str]]:
    """{table: (rows, digest)} of the archive at `url`, through the library's own check."""
    arch = open_archive(data, url=url)
    try:
        return copy.archive_digests(arch.engine)
    finally:
        arch.close()


def pg_state(url: str) -> dict[str, str]:
    """Every table of a PostgreSQL database (the migration ledger too) with a digest of
    its rows: "nothing written" means this is the same before and after."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name").fetchall()]
        return {t: str(conn.execute(  # our own table names, from the catalogue
            f'SELECT count(*) || md5(coalesce(string_agg(t::text, \',\' ORDER BY t::text), \'\')) '
            f'FROM "{t}" t').fetchone()[0]) for t in tables}  # type: ignore[index]


def one_error_line(proc: Any, *words: str) -> str:
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return str(lines[0])


# --- the move, end to end ---------------------------------------------------------------


@pytest.mark.slow
def test_a_sqlite_archive_moves_to_postgresql_and_its_agents_sync_on(
        tmp_path: Path, pg_empty_url: str, pg_cluster: PgCluster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "server"
    arch = init_archive(data)
    arch.add_rep("Mia Manager", tier="senior")
    ana = arch.add_rep("Ana Field 安娜", manager="Mia Manager")["id"]
    leo = arch.add_rep("Leo Leaver", manager="Mia Manager")["id"]
    sam = arch.add_rep("Sam Successor", manager="Mia Manager")["id"]
    ana_cards = [arch.add_customer(CustomerCreate(name=f"Ana 客户 {i}", phone=f"021-0000 000{i}"),
                                   ana) for i in range(4)]
    leo_cards = [arch.add_customer(CustomerCreate(name=f"Leo customer {i}"), leo)["id"]
                 for i in range(2)]
    home_a, home_l = tmp_path / "ana", tmp_path / "leo"

    server = ServerProcess(data, replica="none").start()
    try:
        harness.lib_enroll(data, home_a, server.url, ana)
        harness.lib_enroll(data, home_l, server.url, leo)
        harness.lib_sync(home_a)
        harness.lib_sync(home_l)
        today = datetime.now(UTC).date().isoformat()
        agent_cli(home_a, "plan", "add", "--date", today, "--customer", ana_cards[0]["id"],
                  "--purpose", "service")
        agent_cli(home_a, "plan", "submit", "--date", today)
        online = harness.log_visits(home_a, [c["id"] for c in ana_cards], 3, "online")
        assert harness.lib_sync(home_a).results == {"accepted": 4}
        harness.log_visits(home_l, leo_cards, 1, "leo online")
        assert harness.lib_sync(home_l).results == {"accepted": 1}

        # History: an office edit merged, a conflict on one field, a reassignment that
        # evicts a card from Ana's laptop.
        server_cli(data, "customer", "edit", ana_cards[0]["card_no"], "--notes", "office note")
        agent_cli(home_a, "customer", "edit", ana_cards[1]["id"], "--phone", "021-1111 1111")
        server_cli(data, "customer", "edit", ana_cards[1]["card_no"], "--phone", "021-2222 2222")
        assert harness.lib_sync(home_a).results == {"conflict": 1}
        server_cli(data, "customer", "assign", ana_cards[3]["card_no"], "Sam Successor")
        assert harness.lib_sync(home_a).evicted == 1

        # A departure: Leo works offline, HR revokes him, his laptop hands its unsynced
        # visits over (quarantine), gets its wipe order and wipes.
        harness.log_visits(home_l, leo_cards, 2, "leo offline", start=1)
        server_cli(data, "revoke", "Leo Leaver", "--reason", "resigned",
                   "--reassign-to", "Sam Successor")
        wiped = run([AGENT, "sync", "--home", str(home_l)], check=False)
        assert wiped.returncode == 3 and "wiped" in wiped.stderr, wiped.stderr
        server_cli(data, "customer", "list")  # an export: one more audit entry
    finally:
        server.stop()

    # Ana keeps working offline while the archive moves.
    offline = harness.log_visits(home_a, [c["id"] for c in ana_cards[:3]], 4, "offline",
                                 start=3)
    assert harness.outbox_counts(home_a)["pending"] == 4
    source = open_archive(data)
    # The company's rules' own tables travel too: staff, tokens, plans, pool warnings.
    source.add_staff("Mia", "manager", "Mia Manager", "a long enough password")
    source.create_staff_token("Mia", "erp")
    source.run_jobs(at=(datetime.now(UTC) + timedelta(days=85)).isoformat())
    epoch, audit_entries = source.epoch, source.audit_count()
    assert len(source.conflicts()) == 1 and len(source.quarantine()) == 2
    order = source.wipe_order(source.list_devices(rep=leo)[0]["id"])
    assert order is not None and order["receipt_at"]
    source.close()
    before = digests(None, data)

    out = migrate(data, pg_empty_url)
    assert pg_cluster.password not in json.dumps(out)  # the password is never shown
    assert out["archive_epoch"] == epoch and out["audit_chain"] == "verified"
    assert out["audit_entries"] == audit_entries > 5
    assert out["tables"] == {t: rows for t, (rows, _) in before.items()}
    assert out["rows"] == sum(out["tables"].values())
    assert all(before[t][0] > 0 for t in ("conflicts", "quarantine", "revocations",
                                          "wipe_orders", "ownership", "audit_log", "nonces",
                                          "staff", "staff_tokens", "plans", "plan_revisions",
                                          "pool_warnings"))
    # The copy equals the source, table by table, and the source is untouched.
    assert digests(pg_empty_url, data) == before == digests(None, data)

    monkeypatch.setenv("FIELDVAULT_ARCHIVE_URL", pg_empty_url)  # every command now: PostgreSQL
    verified = server_cli(data, "audit", "verify")
    assert verified == {"ok": True, "entries": audit_entries, "first_broken": None, "problem": ""}

    # The same --data (the server's keys), the same address: the agent notices nothing.
    server = ServerProcess(data, port=server.port, replica="none").start()
    try:
        report = harness.lib_sync(home_a)
        assert report.results == {"accepted": 4} and report.reconciled == {}
        assert harness.outbox_counts(home_a)["pending"] == 0
        pg = open_archive(data, url=pg_empty_url)
        assert pg.engine.kind == "postgresql" and pg.epoch == epoch
        visits = pg.list_visits(rep=ana)
        ids = Counter(v["id"] for v in visits)
        assert set(ids) == {v["id"] for v in online + offline} and max(ids.values()) == 1

        # New changes on the new archive take feed numbers after every copied one, so
        # the laptop's cursor (copied with the epoch) still sees them.
        server_cli(data, "customer", "edit", ana_cards[2]["card_no"], "--phone", "021-3333 3333")
        server_cli(data, "customer", "assign", ana_cards[3]["card_no"], "Ana Field 安娜")
        report = harness.lib_sync(home_a)
        assert report.results == {} and report.reconciled == {}
        cards, on_device = harness.device_rows(home_a)
        assert cards[ana_cards[2]["id"]]["phone"] == "021-3333 3333"
        assert ana_cards[3]["id"] in cards  # granted back, with its history
        assert set(on_device) == {v["id"] for v in pg.list_visits(rep=ana)}
        history = pg.ownership_history(ana_cards[3]["id"])
        assert [h["id"] for h in history] == sorted({h["id"] for h in history})
        assert history[-1]["to_rep_id"] == ana and history[-1]["id"] > before["ownership"][0]
        assert harness.lib_sync(home_a).results == {}  # nothing twice
        assert pg.count_visits(rep=ana) == len(online) + len(offline)
        assert {pg.get_customer(c)["owner_rep_id"] for c in leo_cards} == {sam}
        pg.close()
    finally:
        server.stop()

    # And back again (any direction the engines support): PostgreSQL to a new SQLite file.
    back = tmp_path / "back" / "archive.db"
    monkeypatch.delenv("FIELDVAULT_ARCHIVE_URL")
    out = migrate(data, f"sqlite://{back}", from_url=pg_empty_url)
    assert out["archive_epoch"] == epoch
    assert digests(f"sqlite://{back}", data) == digests(pg_empty_url, data)


def test_an_archive_just_made_by_init_is_an_accepted_target(
        tmp_path: Path, small: Path, pg_url: str) -> None:
    made = server_cli(small, "init", "--archive", pg_url)
    assert made["archive_epoch"] != open_archive(small).epoch
    out = migrate(small, pg_url)
    assert out["archive_epoch"] == open_archive(small).epoch  # the source's identity wins
    assert digests(pg_url, small) == digests(None, small)


def test_sequences_continue_after_the_copied_numbers_on_sqlite_too(
        tmp_path: Path, small: Path) -> None:
    target = tmp_path / "moved" / "archive.db"
    migrate(small, f"sqlite://{target}")
    source = open_archive(small)
    moved = open_archive(tmp_path / "moved")
    with moved.engine.read() as tx, source.engine.read() as src:
        marks = {t: copy.high_water(src, t, c) for t, c in copy.GENERATED}
        assert {t: copy.high_water(tx, t, c) for t, c in copy.GENERATED} == marks
    assert marks["ownership"] > 0 and marks["feed"] > 0
    card = moved.list_customers()[0]
    moved.assign(card["id"], None, "to the pool", "admin")
    assert moved.ownership_history(card["id"])[-1]["id"] == marks["ownership"] + 1
    source.close()
    moved.close()


def test_a_copy_that_fails_at_the_last_step_writes_nothing(
        tmp_path: Path, small: Path, pg_url: str) -> None:
    """All or nothing: the copy's own verification runs inside its one transaction."""
    source = open_archive(small).engine
    target = PostgresEngine.open(pg_url)

    def refuse(tx: Any) -> None:
        assert copy.nonempty_tables(tx)  # everything is there, uncommitted ...
        raise RuntimeError("refused at the last step")

    with pytest.raises(RuntimeError, match="last step"):
        copy.copy_archive(source, target, check=refuse)
    with target.read() as tx:
        assert copy.nonempty_tables(tx) == []  # ... and none of it was committed
    seen: list[tuple[str, int, int]] = []
    report = copy.copy_archive(source, target, progress=lambda *a: seen.append(a))
    assert seen[-1][1] == seen[-1][2] == report.rows
    target.close()
    source.close()


# --- bad input: one error line, non-zero exit, nothing written -------------------------


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A small SQLite archive with a departure and audit entries, in its own --data."""
    data = tmp_path / "small"
    arch = init_archive(data)
    arch.add_rep("Boss Bai", tier="senior")
    rep = arch.add_rep("Rep Ren", manager="Boss Bai")["id"]
    for i in range(3):
        arch.add_customer(CustomerCreate(name=f"Small customer {i}"), rep)
    arch.revoke("Rep Ren", "moved on", reassign_to="Boss Bai")
    arch.close()
    return data


@pytest.fixture
def refusing_target(request: pytest.FixtureRequest, pg_cluster: PgCluster,
                    tmp_path: Path) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(case, target URL, words the error must say) for each way a target is wrong."""
    case = request.param
    if case == "unreachable":
        yield case, f"postgresql://fieldvault@127.0.0.1:{free_port()}/nowhere", (
            "cannot reach", "127.0.0.1")
        return
    name = pg_cluster.new_name("mig")
    url = pg_cluster.create_db(name)
    try:
        if case == "wrong_password":
            yield case, pg_cluster.url(name, password="not-the-password"), (
                "password authentication failed",)
        elif case == "holds_data":
            other = init_archive(tmp_path / "other", url=url)
            other.add_rep("Someone Already Here")
            other.close()
            yield case, url, ("already holds data", "reps")
        elif case == "newer_schema":
            PostgresEngine.migrate(url)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("INSERT INTO fieldvault_migrations (name, applied_at) "
                             "VALUES ('m999_from_the_future', '2030-01-01')")
            yield case, url, ("m999_from_the_future", "upgrade")
        elif case == "foreign_tables":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
                conn.execute("INSERT INTO invoices VALUES (1)")
            yield case, url, ("not a FieldVault archive", "invoices")
        else:
            raise AssertionError(case)
    finally:
        pg_cluster.drop_db(name)


@pytest.mark.parametrize("refusing_target", ["unreachable", "wrong_password", "holds_data",
                                             "newer_schema", "foreign_tables"],
                         indirect=True)
def test_a_wrong_target_is_one_error_line_and_nothing_is_written(
        refusing_target: tuple[str, str, tuple[str, ...]], small: Path,
        pg_cluster: PgCluster) -> None:
    case, url, words = refusing_target
    reachable = case not in ("unreachable", "wrong_password")
    before = pg_state(url) if reachable else None
    if case == "wrong_password":
        before = pg_state(url.replace("not-the-password", pg_cluster.password))
    source = digests(None, small)
    line = one_error_line(migrate(small, url, check=False), *words)
    assert pg_cluster.password not in line and "not-the-password" not in line
    if case == "wrong_password":
        assert pg_state(url.replace("not-the-password", pg_cluster.password)) == before == {}
    elif reachable:
        assert pg_state(url) == before
    assert digests(None, small) == source


def test_the_source_itself_or_a_non_empty_sqlite_file_is_refused(
        tmp_path: Path, small: Path) -> None:
    archive_db = small / "archive.db"
    source = digests(None, small)
    one_error_line(migrate(small, f"sqlite://{archive_db}", check=False), "both name")
    one_error_line(migrate(small, f"sqlite://{archive_db}", from_url=f"sqlite://{archive_db}",
                           check=False), "both name")
    # Another archive holding data, and a SQLite file that is no archive at all.
    other = tmp_path / "other"
    init_archive(other).add_rep("Already Here")
    one_error_line(migrate(small, f"sqlite://{other / 'archive.db'}", check=False),
                   "already holds data")
    stray = tmp_path / "stray.db"
    with sqlite3.connect(stray) as conn:
        conn.execute("CREATE TABLE notes (x)")
    one_error_line(migrate(small, f"sqlite://{stray}", check=False), "not a FieldVault archive")
    assert digests(None, small) == source
    assert [r[0] for r in sqlite3.connect(stray).execute(
        "SELECT name FROM sqlite_master")] == ["notes"]


def test_a_source_with_another_schema_is_refused_before_the_target_is_touched(
        tmp_path: Path, small: Path, pg_empty_url: str) -> None:
    with harness.raw_archive(small) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('fieldvault-archive', 'm999_from_the_future', '2030-01-01')")
    one_error_line(migrate(small, pg_empty_url, check=False), "m999_from_the_future")
    assert pg_state(pg_empty_url) == {}
    missing = tmp_path / "nothing-here"
    one_error_line(migrate(missing, pg_empty_url, check=False), "no archive")
    assert pg_state(pg_empty_url) == {}
