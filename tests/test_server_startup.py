"""`serve` checks at start-up that it can read and write its archive and data folder
(issue 8, finding 21): one `error:` line and a non-zero exit, never a traceback, and
never an "ok" server that then fails every sync.

As root, file modes do not stop reads and writes (CAP_DAC_OVERRIDE): the server is
then started with the DAC capabilities removed from its bounding set (`setpriv`),
which makes the modes bite exactly as for an ordinary service user. The read-only
file system case mounts a tmpfs and remounts it read-only in a private mount
namespace (`unshare -m`) where that is allowed; elsewhere it falls back to a
read-only folder, and says so in the test id.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import SERVER, free_port, init_server, run


def _can(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


AS_ROOT = os.geteuid() == 0
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if AS_ROOT else []
MOUNTS = AS_ROOT and _can(["unshare", "-m", "sh", "-c",
                           "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d "
                           "&& mount -o remount,ro $d"])


def serve(data: Path, *extra: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Start serve; it must refuse at once (a server that starts would hit the timeout)."""
    cmd = [*(NO_DAC if prefix is None else prefix), SERVER, "serve", "--data", str(data),
           "--port", str(free_port()), *extra]
    try:
        return run(cmd, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve started instead of refusing the unusable archive") from None


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _unreadable(data: Path) -> None:
    os.chmod(data / "archive.db", 0o000)


def _read_only_archive(data: Path) -> None:
    for name in ("archive.db", "archive.db-wal", "archive.db-shm"):
        if (data / name).exists():
            os.chmod(data / name, 0o400)


def _read_only_folder(data: Path) -> None:
    os.chmod(data, 0o500)


def _not_an_archive(data: Path) -> None:
    for name in ("archive.db-wal", "archive.db-shm"):
        (data / name).unlink(missing_ok=True)
    (data / "archive.db").write_bytes(b"this is not SQLite\n" * 300)


def _other_database(data: Path) -> None:
    (data / "archive.db").unlink()
    for name in ("archive.db-wal", "archive.db-shm"):
        (data / name).unlink(missing_ok=True)
    sqlite3.connect(data / "archive.db").execute("CREATE TABLE t(x)").connection.close()


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "unreadable-archive": (_unreadable, "cannot open the archive"),
    "read-only-archive": (_read_only_archive, "cannot open the archive"),
    "read-only-data-folder": (_read_only_folder, "cannot write in the data folder"),
    "not-an-archive": (_not_an_archive, "is not a readable FieldVault archive"),
    "another-sqlite-file": (_other_database, "is not a readable FieldVault archive"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("replica", ["none", "default"])
def test_serve_refuses_an_archive_it_cannot_use(tmp_path: Path, case: str, replica: str) -> None:
    data = tmp_path / "server"
    init_server(data)
    spoil, why = CASES[case]
    spoil(data)
    try:
        line = one_error_line(serve(data, *(("--replica", "none") if replica == "none" else ())))
    finally:
        os.chmod(data, 0o700)
    assert why in line and str(data) in line, line
    assert not (data / "replica").exists()  # refused before Litestream was started


def test_serve_refuses_a_read_only_file_system(tmp_path: Path) -> None:
    data = tmp_path / "server"
    init_server(data)
    if MOUNTS:
        # A private mount namespace: the tmpfs vanishes with the process, even on failure.
        script = ('set -e; m="$1"; shift; mount -t tmpfs -o size=16m,mode=0700 tmpfs "$m"; '
                  'cp -a "$0"/. "$m"/; mount -o remount,ro "$m"; exec "$@"')
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        proc = serve(mnt, "--replica", "none",
                     prefix=["unshare", "-m", "sh", "-c", script, str(data), str(mnt)])
        line = one_error_line(proc)
        assert "Read-only file system" in line, line
    else:
        shutil.copytree(data, tmp_path / "ro")
        for path in [tmp_path / "ro", *(tmp_path / "ro").iterdir()]:
            os.chmod(path, 0o500 if path.is_dir() else 0o400)
        line = one_error_line(serve(tmp_path / "ro", "--replica", "none"))
        assert "cannot write in the data folder" in line, line
    assert "fix" in line


def test_serve_refuses_a_missing_archive(tmp_path: Path) -> None:
    line = one_error_line(serve(tmp_path / "nothing-here", "--replica", "none", prefix=[]))
    assert "fieldvault-server init" in line
