"""`--archive URL` on the server's commands: PostgreSQL for real, and every bad URL one
error line, a non-zero exit and nothing written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from server.archive.sqlite import ARCHIVE_FILE

from .harness import SERVER, free_port, run, server_cli, snapshot
from .pgcluster import PgCluster


def cli(data: Path, url: str | None, *args: str) -> tuple[int, str, str]:
    cmd = [SERVER, *args, "--data", str(data), "--json"]
    if url is not None:
        cmd += ["--archive", url]
    proc = run(cmd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_every_admin_command_works_on_postgresql(tmp_path: Path, pg_empty_url: str) -> None:
    data = tmp_path / "server"
    code, out, err = cli(data, pg_empty_url, "init")
    assert code == 0, err
    init = json.loads(out)
    assert init["archive"].startswith("postgresql://") and "***" in init["archive"]
    assert init["archive_epoch"]
    # Nothing of the archive went into --data: only the server's keys.
    assert not (data / ARCHIVE_FILE).exists() and (data / "server_sign.pem").exists()
    # The URL from the environment, as operators are told to pass it.
    env_run = run([SERVER, "rep", "add", "--name", "李伟", "--data", str(data), "--json"],
                  env={"FIELDVAULT_ARCHIVE_URL": pg_empty_url})
    rep = json.loads(env_run.stdout)
    code, out, _ = cli(data, pg_empty_url, "rep", "list")
    assert [r["name"] for r in json.loads(out)] == ["李伟"] and rep["name"] == "李伟"
    code, out, _ = cli(data, pg_empty_url, "new-epoch", "--note", "restored by PITR")
    new = json.loads(out)["archive_epoch"]
    assert code == 0 and new != init["archive_epoch"]
    code, out, _ = cli(data, pg_empty_url, "audit", "list")
    actions = [e["action"] for e in json.loads(out)]
    assert actions[-1] == "archive.new_epoch" and "rep.add" in actions
    code, out, _ = cli(data, pg_empty_url, "audit", "verify")
    assert code == 0 and json.loads(out)["ok"]
    # Litestream does not apply: backup status says what to do instead, and is not an error.
    code, out, _ = cli(data, pg_empty_url, "backup", "status")
    status = json.loads(out)
    assert code == 0 and status["backend"] == "postgresql" and "WAL" in status["note"]
    # Init again is a no-op: same epoch, same rep.
    code, out, _ = cli(data, pg_empty_url, "init")
    assert json.loads(out)["archive_epoch"] == new


def test_unreachable_or_refused_postgresql_is_one_line(tmp_path: Path, pg_cluster: PgCluster,
                                                       pg_url: str) -> None:
    data = tmp_path / "server"
    dbname = pg_url.rsplit("/", 1)[1]
    closed = f"postgresql://fieldvault:s3cret-pw@127.0.0.1:{free_port()}/{dbname}"
    wrong_pw = pg_cluster.url(dbname, password="not-the-password")
    no_db = pg_cluster.url("no_such_database")
    for url, words in ((closed, "cannot reach"), (wrong_pw, "cannot reach"),
                       (no_db, "cannot reach")):
        for args in (("rep", "list"), ("init",), ("rep", "add", "--name", "X")):
            code, out, err = cli(data, url, *args)
            line = one_error_line(err)
            assert code != 0 and out == "", (url, args)
            assert words in line and "--archive" in line, line
            # The password never appears, in any form.
            assert "s3cret-pw" not in err and "not-the-password" not in err
            assert pg_cluster.password not in err


def test_malformed_url_and_missing_archive(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "server"
    for url in ("mysql://root@localhost/db", "archive.db", "sqlite://relative.db"):
        code, _, err = cli(data, url, "rep", "list")
        line = one_error_line(err)
        assert code != 0 and "sqlite:///" in line and "postgresql://" in line, line
    # A migrated but never initialized database (no epoch) and a missing SQLite file.
    code, _, err = cli(data, None, "rep", "list")
    assert code != 0 and "fieldvault-server init" in one_error_line(err)
    assert not (data / ARCHIVE_FILE).exists()


def test_schema_from_another_version_is_refused_and_untouched(tmp_path: Path,
                                                              pg_empty_url: str) -> None:
    data = tmp_path / "server"
    server_cli(data, "init")
    # A newer server's migration recorded in the archive: this server must not touch it.
    with sqlite3.connect(data / ARCHIVE_FILE) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('fieldvault-archive', 'm999_from_the_future', '2027-01-01')")
    before = snapshot(data)
    for args in (("rep", "add", "--name", "Li"), ("init",), ("rep", "list")):
        code, _, err = cli(data, None, *args)
        assert code != 0 and "upgrade" in one_error_line(err)
    assert snapshot(data) == before
    # The same on PostgreSQL: a half-migrated database is refused, not used.
    import psycopg

    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE fieldvault_migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        conn.execute("INSERT INTO fieldvault_migrations VALUES ('m999_from_the_future', 'x')")
    code, _, err = cli(tmp_path / "pg", pg_empty_url, "init")
    assert code != 0 and "upgrade" in one_error_line(err)
    code, _, err = cli(tmp_path / "pg", pg_empty_url, "rep", "list")
    assert code != 0 and "upgrade" in one_error_line(err)


def test_serve_refuses_a_bad_archive_url_before_listening(tmp_path: Path) -> None:
    data = tmp_path / "server"
    server_cli(data, "init")
    port = free_port()
    proc = run([SERVER, "serve", "--data", str(data), "--port", str(port), "--archive",
                f"postgresql://fv:pw@127.0.0.1:{free_port()}/fv"], check=False, timeout=60)
    assert proc.returncode != 0
    assert "cannot reach" in one_error_line(proc.stderr) and "pw@" not in proc.stderr


def test_concurrent_inits_of_one_sqlite_archive_agree(tmp_path: Path) -> None:
    """A deploy script and an operator running `init` at the same moment."""
    import subprocess

    data = tmp_path / "server"
    procs = [subprocess.Popen([SERVER, "init", "--data", str(data), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    epochs = {json.loads(out)["archive_epoch"] for out, _ in outs}
    assert len(epochs) == 1
    assert server_cli(data, "rep", "list") == []
