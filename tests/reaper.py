"""A watchdog for what the tests start outside their own process: `serve` process
groups (each in its own session, tests/harness.py) and throwaway PostgreSQL clusters
(tests/pgcluster.py).

Finalizers and atexit stop them when the test process ends normally. When it dies
without running them (SIGKILL, a crashed pytest-xdist worker, a hard timeout), this
watchdog does: a small child process, in a session of its own, that reads what to
watch from a pipe held only by the test process. When the pipe closes with entries
still on it, the test process died owning them: it SIGKILLs each process group, stops
each cluster and removes its folder. A clean run leaves nothing on it, so the
watchdog then just exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import IO

# The watchdog's whole program: one JSON list a line, ["+"|"-", kind, key, payload].
_WATCHDOG = r"""
import json, os, shutil, signal, subprocess, sys
groups, clusters = set(), {}
for line in sys.stdin:
    sign, kind, key, payload = json.loads(line)
    if kind == "group":
        (groups.add if sign == "+" else groups.discard)(key)
    elif sign == "+":
        clusters[key] = payload
    else:
        clusters.pop(key, None)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
for root, stop in clusters.items():
    try:
        subprocess.run(stop, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        pass
    shutil.rmtree(root, ignore_errors=True)
"""

_lock = threading.Lock()
_pipe: IO[str] | None = None
_owner = 0  # the pid that started the watchdog: a fork must not write to its pipe


def _send(sign: str, kind: str, key: int | str, payload: list[str] | None = None) -> None:
    global _pipe, _owner
    with _lock:
        if _pipe is None or _owner != os.getpid():
            if sign == "-":
                return
            proc = subprocess.Popen([sys.executable, "-c", _WATCHDOG], stdin=subprocess.PIPE,
                                    text=True, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert proc.stdin is not None
            _pipe, _owner = proc.stdin, os.getpid()
        try:
            _pipe.write(json.dumps([sign, kind, key, payload]) + "\n")
            _pipe.flush()
        except OSError:  # the watchdog is gone: nothing left to tell it
            pass


def watch_group(pgid: int) -> None:
    """SIGKILL process group `pgid` if this process dies before `forget_group`."""
    _send("+", "group", pgid)


def forget_group(pgid: int) -> None:
    _send("-", "group", pgid)


def watch_cluster(root: str, stop: list[str]) -> None:
    """Run `stop` (argv) and remove folder `root` if this process dies before
    `forget_cluster(root)`."""
    _send("+", "cluster", root, stop)


def forget_cluster(root: str) -> None:
    _send("-", "cluster", root)
