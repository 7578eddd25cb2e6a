"""The agent on a really full disk (issue 8, finding 20): `visit log` and a first `sync`
fail with one `error:` line and a non-zero exit instead of a traceback, the vault is left
as it was, and once space is freed everything works and nothing saved earlier is lost.

The agent home lives on a small tmpfs filled with a filler file (the tests run as root,
here and in CI); it is always unmounted."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schema.models import CustomerCreate

from .harness import AGENT, ServerProcess, add_rep, agent_cli, archive, open_store, run, server_cli

CUSTOMERS = 300


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=True, timeout=30)


def fill(disk: Path, slack: int = 0) -> Path:
    """Fill the disk with a filler file until writes fail, then leave `slack` bytes."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as f:
        for _ in range(100_000):  # bounded: 6 GiB, far beyond the 8 MiB disk
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - slack))
    return filler


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: the disk ")
    assert "free some space" in lines[0]
    return lines[0]


def snapshot(home: Path) -> dict[str, Any]:
    with open_store(home) as store:
        return {"customers": sorted(c["id"] for c in store.iter_customers()),
                "visits": sorted((v["id"], v["rev"], v["summary"]) for v in store.iter_visits()),
                "outbox": store.outbox_counts(), "cursor": store.get_state("cursor")}


def log_visit(home: Path, card: str, summary: str) -> subprocess.CompletedProcess[str]:
    return run([AGENT, "visit", "log", "--home", str(home), "--customer", card,
                "--purpose", "service", "--summary", summary], check=False)


def test_full_disk_first_sync_and_visit_log(data_dir: Path, server: ServerProcess,
                                            small_disk: Path) -> None:
    rep = add_rep(data_dir, "Full Disk")
    archive(data_dir).import_customers(
        [(CustomerCreate(name=f"客户 {i}", notes="备注" * 600), rep) for i in range(CUSTOMERS)],
        "test")
    home = small_disk / "agent"
    code = server_cli(data_dir, "enroll-code", rep)["code"]
    agent_cli(home, "enroll", "--server", server.url, "--code", code, "--no-sync")
    before = snapshot(home)

    # A first sync on a full disk: one line, and the vault is as it was.
    filler = fill(small_disk)
    one_error_line(run([AGENT, "sync", "--home", str(home)], check=False))
    one_error_line(run([AGENT, "status", "--home", str(home)], check=False))
    filler.unlink()
    assert snapshot(home) == before
    assert agent_cli(home, "sync")["pulled_customers"] == CUSTOMERS

    # Work saved before the disk fills up.
    cards = sorted(c["card_no"] for c in agent_cli(home, "customer", "list"))
    saved = [agent_cli(home, "visit", "log", "--customer", cards[0], "--purpose", "order",
                       "--summary", "Ordered 200 units before the disk filled")["id"]]
    kept = snapshot(home)

    # `visit log` on a full disk, then with a little room left: each attempt is either
    # saved whole or refused in one line leaving the vault unchanged.
    refused = 0
    for slack in (0, 16 * 1024, 48 * 1024, 160 * 1024):
        filler = fill(small_disk, slack)
        proc = log_visit(home, cards[1], f"logged with {slack} bytes free " + "长" * 3000)
        filler.unlink()
        if proc.returncode == 0:
            saved.append(next(v["id"] for v in agent_cli(home, "visit", "list")
                              if v["summary"].startswith(f"logged with {slack} bytes free")))
        else:
            one_error_line(proc)
            refused += 1
            assert snapshot(home) == kept
        kept = snapshot(home)
    assert refused >= 1  # at least the completely full disk refused it

    # Space is back: everything works and nothing saved earlier is lost.
    assert {v["id"] for v in agent_cli(home, "visit", "list")} == set(saved)
    report = agent_cli(home, "sync")
    assert report["results"] == {"accepted": len(saved)}
    archived = archive(data_dir).list_visits(rep=rep)
    assert sorted(v["id"] for v in archived) == sorted(saved)
    assert len(agent_cli(home, "customer", "list")) == CUSTOMERS


def test_enroll_whose_first_sync_fills_the_disk(data_dir: Path, server: ServerProcess,
                                                small_disk: Path) -> None:
    rep = add_rep(data_dir, "Almost Full")
    archive(data_dir).import_customers(
        [(CustomerCreate(name=f"客户 {i}", notes="备注" * 600), rep) for i in range(CUSTOMERS)],
        "test")
    home = small_disk / "agent"
    code = server_cli(data_dir, "enroll-code", rep)["code"]
    # Room for the enrollment (keys, config, an empty vault), not for the customers.
    filler = fill(small_disk, slack=600 * 1024)
    proc = run([AGENT, "enroll", "--home", str(home), "--server", server.url, "--code", code],
               check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: enrolled, but the first sync failed (the disk ")
    assert "free some space" in line and "run `fieldvault sync`" in line
    filler.unlink()
    assert agent_cli(home, "customer", "list") == []
    assert agent_cli(home, "sync")["pulled_customers"] == CUSTOMERS
