"""Health reflects replication lag and Litestream's own errors (issue 8, finding 19).

A real `serve` under a real Litestream whose file replica sits on a tiny tmpfs: when
the tmpfs is full, Litestream pauses replication and logs an error; /healthz and
`backup status` must say so, with the reason, and the lag gauge must rise. When space
is back, health recovers. Where the machine may not mount, the replica folder is made
immutable (`chattr +i`), or else a file takes the place of the replica's level-0
folder: Litestream cannot write it either way.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import replication

from .harness import ServerProcess, init_server, run, server_cli


def _try(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def block_mode(root: Path) -> str:
    """How this machine can stop Litestream writing the replica: a full tmpfs (root with
    mount rights), an immutable folder (chattr +i), or a file where Litestream's level-0
    folder should be (works everywhere). FIELDVAULT_TEST_REPLICA_BLOCK forces one."""
    forced = os.environ.get("FIELDVAULT_TEST_REPLICA_BLOCK")
    if forced:
        return forced
    probe = root.parent / "chattr-probe"
    probe.mkdir()
    immutable = _try(["chattr", "+i", str(probe)]) and _try(["chattr", "-i", str(probe)])
    probe.rmdir()
    if os.geteuid() == 0 and _try(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                                   str(root)]):
        return "tmpfs"
    return "immutable" if immutable else "in-the-way"


@contextlib.contextmanager
def blockable_replica(root: Path) -> Iterator[tuple[Path, str, Callable[[], Any]]]:
    """A replica folder, its block mode, and a context in which Litestream cannot write
    it; leaving that context gives the space back."""
    root.mkdir()
    mode = block_mode(root)
    if mode == "tmpfs" and not os.path.ismount(root):
        run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(root)])

    @contextlib.contextmanager
    def blocked() -> Iterator[None]:
        filler, aside = root / "filler", root.with_name(root.name + ".aside")
        dirs = [p for p in root.rglob("*") if p.is_dir()] + [root]
        if mode == "tmpfs":
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                for _ in range(4096):  # bounded: 4 MiB at most on a 4 MiB tmpfs
                    fh.write(b"\0" * 1024)
                    fh.flush()
            assert not _try(["dd", "if=/dev/zero", f"of={root}/probe", "bs=4096", "count=1"])
        elif mode == "immutable":
            for d in dirs:
                run(["chattr", "+i", str(d)])
        else:  # a file where the replica folder was: nobody can write into it, not even root
            os.rename(root, aside)
            root.write_bytes(b"")
        try:
            yield
        finally:
            if mode == "tmpfs":
                filler.unlink()
                (root / "probe").unlink(missing_ok=True)
            elif mode == "immutable":
                for d in dirs:
                    run(["chattr", "-i", str(d)])
            else:
                root.unlink()
                os.rename(aside, root)

    try:
        yield root, mode, blocked
    finally:
        if mode == "tmpfs":
            run(["umount", "-l", str(root)], check=False)


def health(server: ServerProcess) -> dict:  # type: ignore[type-arg]
    return httpx.get(server.url + "/healthz", timeout=30).json()  # type: ignore[no-any-return]


def gauge(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=30).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def write_some(data: Path, n: int) -> None:
    """Office edits straight into the archive: Litestream must ship them."""
    for i in range(n):
        server_cli(data, "customer", "add", "--name", f"Customer {i} " + "x" * 40,
                   "--notes", os.urandom(1500).hex())


def wait_for(check, what: str, timeout: float = 90) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None:
            return last  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen")


@pytest.mark.slow
def test_health_reports_paused_replication_and_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "server"
    init_server(data)
    monkeypatch.setenv("FIELDVAULT_REPLICA_PROBE_TTL_S", "0")  # every probe looks afresh
    with blockable_replica(tmp_path / "replica") as (replica, mode, blocked):
        server = ServerProcess(data, replica=f"file://{replica}").start()
        try:
            wait_for(lambda: health(server) if health(server)["status"] == "ok" else None,
                     "the first snapshot")
            with blocked():
                write_some(data, 5)
                bad = wait_for(lambda: (h := health(server))["status"] == "degraded" and h or None,
                               "degraded health on a replica that cannot be written")
                reasons = " | ".join(bad["replication"]["errors"])
                assert gauge(server, "fieldvault_replica_healthy") == 0
                status = server_cli(data, "backup", "status", check=False)
                assert status.returncode == 1
                if mode == "in-the-way":
                    # The replica itself is gone: no lag to measure, the reason says so.
                    assert "cannot use the file replica" in reasons, reasons
                else:
                    # Paused: the replica is readable but behind, and Litestream said why.
                    assert "Litestream cannot replicate" in reasons, reasons
                    assert ("no space left" if mode == "tmpfs" else "not permitted") in reasons
                    assert bad["replication"]["lag_txns"] > 0
                    assert gauge(server, "fieldvault_replica_lag_txns") > 0
                    assert 0 <= gauge(server, "fieldvault_replica_lag_seconds") < 3600
                    assert "Litestream cannot replicate" in status.stdout
                    # The same lag judged an hour later (injected time) is also too old.
                    later = replication.backup_status(data, max_lag=60, now=time.time() + 3600)
                    assert any("replication is behind" in e for e in later["errors"]), later
            # Space is back: Litestream retries, the replica catches up, health recovers.
            good = wait_for(lambda: (h := health(server))["status"] == "ok" and h or None,
                            "recovery once the replica can be written again")
            assert good["replication"]["lag_txns"] == 0
            assert gauge(server, "fieldvault_replica_healthy") == 1
            assert gauge(server, "fieldvault_replica_lag_seconds") == 0
            assert server_cli(data, "backup", "status")["healthy"] is True
        finally:
            server.stop()
    log = (data / replication.LOG_FILE).read_text()
    assert "level=ERROR" in log and os.stat(data / replication.LOG_FILE).st_mode & 0o777 == 0o600


def test_lag_beyond_the_limit_is_unhealthy_without_litestream_errors(tmp_path: Path) -> None:
    """Lag alone (Litestream silent, e.g. stuck) makes health fail once it is too old;
    time is injected, nothing sleeps."""
    data = tmp_path / "server"
    init_server(data)
    replica = replication.Replica(f"file://{tmp_path / 'replica'}")
    replication.write_config(data, replica)
    shadow = data / ".archive.db-litestream" / "ltx" / "0"
    shadow.mkdir(parents=True)
    (shadow / "0000000000000001-0000000000000003.ltx").write_bytes(b"")
    captured = (shadow / "0000000000000001-0000000000000003.ltx").stat().st_mtime
    fresh = replication.backup_status(data, now=captured + 5, max_lag=60)
    assert fresh["lag_txns"] == 3 and fresh["lag_seconds"] == 5
    assert not any("behind" in e for e in fresh["errors"])
    old = replication.backup_status(data, now=captured + 61, max_lag=60)
    assert old["healthy"] is False and old["lag_seconds"] == 61
    assert any("3 transactions not in the replica for 61s" in e for e in old["errors"]), old
