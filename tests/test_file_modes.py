"""Archive files are the server's alone (issue 8, finding 5): another local user
must not read the archive, its -wal/-shm, the keys or the replica.

Real `fieldvault-server init`/`serve` processes, a real Litestream file replica and
a real agent sync.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from .harness import SERVER, ServerProcess, add_rep, agent_cli, enroll, run, server_cli

NOBODY = 65534


def modes(data: Path, skip: tuple[str, ...] = ("serve.log",)) -> dict[str, int]:
    """Mode of every file and folder under data (the test harness's own log skipped)."""
    out = {".": stat.S_IMODE(os.lstat(data).st_mode)}
    for dirpath, dirs, files in os.walk(data):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(data))
            if rel not in skip:
                out[rel] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def not_private(found: dict[str, int], data: Path) -> dict[str, str]:
    wrong = {}
    for rel, mode in found.items():
        want = 0o700 if (data / rel).is_dir() else 0o600
        if mode & 0o077 or (rel == "." and mode != want):
            wrong[rel] = f"{mode:o}"
    return wrong


def test_init_on_an_existing_open_folder_makes_it_private(tmp_path: Path) -> None:
    data = tmp_path / "server"
    data.mkdir()
    os.chmod(data, 0o755)
    old = os.umask(0o022)  # a usual login shell
    try:
        server_cli(data, "init")
    finally:
        os.umask(old)
    found = modes(data)
    assert found["."] == 0o700
    assert found["archive.db"] == 0o600 and found["server_sign.pem"] == 0o600
    assert not_private(found, data) == {}


def test_init_refuses_an_open_folder_it_does_not_own(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        data = tmp_path / "server"
        data.mkdir()
        os.chmod(data, 0o755)
        os.chown(data, NOBODY, NOBODY)
    else:  # an ordinary user cannot give a folder away; /tmp is root's and open to all
        data = Path("/tmp")
    proc = run([SERVER, "init", "--data", str(data)], check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: the data folder") and "chmod 700" in line
    assert data == Path("/tmp") or not (data / "archive.db").exists()


@pytest.mark.slow
def test_after_serve_and_a_sync_every_file_is_private(tmp_path: Path) -> None:
    data, home = tmp_path / "server", tmp_path / "agent"
    server_cli(data, "init")
    rep = add_rep(data, "Ma Lin")
    server_cli(data, "customer", "add", "--name", "Secret Customer", "--owner", rep)
    # An archive from before this fix: an open folder and world-readable files.
    os.chmod(data, 0o755)
    for name in ("archive.db", "server_sign.pem", "server_box.pem"):
        os.chmod(data / name, 0o644)
    server = ServerProcess(data).start()  # the default file replica under DATA/replica
    try:
        # enroll ends with the first sync, which brings the customer down
        assert enroll(data, home, server.url, rep)["first_sync"]["pulled_customers"] == 1
        agent_cli(home, "customer", "add", "--name", "Laptop Customer")
        agent_cli(home, "sync")
        # Litestream replicates every second: wait (bounded) until the replica has LTX files.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list((data / "replica").rglob("*.ltx")):
            time.sleep(0.1)
        found = modes(data)
        assert {"archive.db", "archive.db-wal", "archive.db-shm", "server_sign.pem", "server_box.pem",
                "litestream.yml", "replica.url", "replica"} <= set(found)
        assert any(rel.startswith("replica/") and rel.endswith(".ltx") for rel in found)
        assert any(rel.startswith(".archive.db-litestream/") for rel in found)
        assert not_private(found, data) == {}, found
    finally:
        server.stop()


def test_private_writes_never_follow_or_trip_over_a_stale_temporary(tmp_path: Path) -> None:
    """`agent.home.write_private` (config, keys, keyring, receipt, and the sealed outbox
    through `Sealer.replace`): a temporary left by a crash does not block the next write,
    and a symlink planted at the temporary name is removed, never written through."""
    from agent.envelopes import ENVELOPE_FILE, Sealer
    from agent.home import write_private

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours")
    (home / "config.json.tmp").symlink_to(victim)
    (home / (ENVELOPE_FILE + ".tmp")).write_bytes(b"stale, from a crash")
    old = os.umask(0)  # whatever the umask, the result is 0600
    try:
        write_private(home / "config.json", b"{}")
        Sealer(home, "dev", b"\0" * 32).replace(b"envelopes\n")
    finally:
        os.umask(old)
    assert victim.read_bytes() == b"not yours"
    for name, want in (("config.json", b"{}"), (ENVELOPE_FILE, b"envelopes\n")):
        path = home / name
        assert not path.is_symlink() and path.read_bytes() == want
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir()) == sorted(["config.json", ENVELOPE_FILE])
