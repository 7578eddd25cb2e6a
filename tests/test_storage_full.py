"""Finding 18: the server's disk fills up. The archive lives on a small tmpfs mounted
by the test (we run as root, locally and in CI); a filler file takes the last byte.
Every request that must write answers 503 JSON with Retry-After, `fieldvault sync`
exits 2 saying the data stays on the laptop, and once space is back the visits
arrive exactly once."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness
from .harness import ServerProcess, agent_cli, enroll, init_server, run

VISITS = 12


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)], check=False)
    if proc.returncode != 0:
        pytest.fail(f"this test mounts a tmpfs and needs root: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the file system is full, to the last byte (bounded)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (256 * 1024, 4096, 512, 1):
            for _ in range(100_000):
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
            else:
                raise AssertionError("the disk never filled up")
    finally:
        os.close(fd)
    return filler


def test_full_disk_answers_503_and_nothing_is_lost(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    init_server(data)
    rep = harness.archive(data).add_rep("Zhou Min")["id"]
    customer = harness.add_customers(data, rep, ["Hangzhou Pumps"])[0]
    server = ServerProcess(data, replica="none").start()
    try:
        home = tmp_path / "agent"
        enroll(data, home, server.url, rep)
        agent_cli(home, "sync")
        logged = harness.log_visits(home, [customer["id"]], VISITS, "full disk " + "x" * 3000)

        filler = fill(small_disk)
        proc = agent_cli(home, "sync", check=False)
        assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: the server cannot store data right now"), lines
        assert "kept on this laptop" in lines[0], lines
        assert harness.outbox_counts(home).get("pending", 0) >= VISITS, harness.outbox_counts(home)

        log = server.log.read_text()
        assert "Traceback" not in log, log[-3000:]
        assert "storage failure" in log, log[-3000:]

        os.remove(filler)
        report = agent_cli(home, "sync")
        assert report["results"] == {"accepted": VISITS}, report
        again = agent_cli(home, "sync")
        assert not again.get("results"), again
        archived = {v["id"] for v in harness.archive(data).iter_visits()}
        assert archived == {v["id"] for v in logged} and len(archived) == VISITS
    finally:
        server.stop()


def test_storage_failure_is_a_503_json_with_retry_after(small_disk: Path, tmp_path: Path) -> None:
    """The raw answer a client gets while the disk is full."""
    from .harness import enroll_device, make_client

    data = small_disk / "data"
    client = make_client(data)
    archive = client.app.state.archive  # type: ignore[attr-defined]
    rep = archive.add_rep("Qian Hui")["id"]
    device = enroll_device(client, archive, rep)
    fill(small_disk)
    resp = device.send("POST", "/v1/lease", b"{}")
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["retry-after"].isascii() and int(resp.headers["retry-after"]) > 0
    body = resp.json()
    assert body["error"] == "storage_unavailable" and body["message"], body
