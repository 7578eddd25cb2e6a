"""The search index of a first sync, built after it, by a detached process.

A first sync fills the vault's tables without tokenizing them (Store.defer_search_index)
and searches scan the tables until the trigram index is built in one transaction
(Store.build_search_index). That build is ~15% of a first sync's time, so the commands
(`fieldvault enroll`, `sync`, `run`, `ui`) do not wait for it: they start this module as
a child in its own session, like `git gc --auto --detach`, and report as soon as the
sync is done. A crash of the child leaves the flag set and searches complete (the
exact scan); the next command that finds the index missing starts another.

One builder at a time: the caller takes an exclusive flock on `search-index.lock` in
the agent home *before* starting the child and hands the locked file to it, so the
lock is held from before the command reports until the build ends; a second caller
finds it taken and starts nothing. Whoever waits for the index (tests, scripts/bench)
takes the same lock.

The vault key never leaves the vault's owner: the child opens the vault itself, through
the key store and its lease rules, as any command does. Only the rep's PIN, when the
vault needs one, is handed over, and only on the child's stdin (a pipe): never argv,
the environment or a log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

LOCK_FILE = "search-index.lock"
PIN_MAX = 4096  # bytes read from the pipe at most: a PIN is short


def _open_lock(home: Path) -> int:
    return os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600)


def build_detached(home: Path, pin: str | None) -> bool:
    """Start a detached builder of the search index; False if one already runs."""
    fd = _open_lock(home)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        read, write = os.pipe()
        try:
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "agent.search_index", str(home), str(fd)],
                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, pass_fds=(fd,), close_fds=True, cwd="/",
            )
        finally:
            os.close(read)
        # The PIN, if any, then EOF; a PIN is far smaller than the pipe's buffer, so
        # this never waits for the child.
        with os.fdopen(write, "wb") as pipe:
            pipe.write((pin or "").encode())
        return True
    finally:
        os.close(fd)  # the child holds the lock on from here (the same open file)


def wait_ready(home: Path, timeout: float) -> bool:
    """Wait until no builder holds the lock (the index is built, or its builder died);
    False at the deadline. Polls: a blocking flock could not be bounded."""
    fd = _open_lock(home)
    try:
        deadline = time.monotonic() + timeout
        while True:  # bounded by the deadline
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.005)
    finally:
        os.close(fd)


def _child(home: Path, lock_fd: int) -> int:
    """The detached builder: the lock is already held (inherited as `lock_fd`)."""
    from .store import Store

    pin = sys.stdin.buffer.read(PIN_MAX).decode() or None
    with contextlib.closing(Store.open(home, pin=pin, must_exist=True)) as store:
        if not store.search_index_ready():
            store.build_search_index()
    os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1]), int(sys.argv[2])))
