"""The background applier of push batches stored to be applied after their answer
(server/rules/received.py). Every server process runs one.

Pacing: while a laptop's stored batches keep arriving, the applier waits, so the CPU
goes to taking the rep's work off the laptop while the link is up. It applies as soon
as arrivals pause for `quiet_s`, and in any case once the oldest batch has waited
`max_wait_s` by the archive's clock, so a fleet that never pauses does not starve it
(Settings.apply_quiet_s, apply_max_wait_s).
Each batch is one serial write, oldest first of all devices' (workers take turns by
the archive's serial lock), so a request waits for at most one batch's apply.
A batch whose apply fails stays stored and is tried again after `RETRY_S`.
"""

from __future__ import annotations

import logging
import threading
import time

from schema.clock import parse_iso

from . import metrics
from .rules import Archive

log = logging.getLogger("fieldvault.applier")

# Another worker's stored batch is seen within this (this process's wake it at once).
IDLE_POLL_S = 1.0
# While batches arrive: how often the applier looks whether they have paused.
PAUSE_POLL_S = 0.25
RETRY_S = 5.0


class Applier:
    def __init__(self, archive: Archive, quiet_s: float, max_wait_s: float) -> None:
        self.archive = archive
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fieldvault-applier", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the batch being applied, if any (its transaction completes)."""
        self._stop.set()
        self.archive.received_waiting.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        newest: str | None = None
        changed = time.monotonic()
        while not self._stop.is_set():
            try:
                backlog = self.archive.received_backlog()
            except Exception:
                log.exception("could not read the stored push batches")
                self._stop.wait(RETRY_S)
                continue
            metrics.RECEIVED_OPS.set(backlog["ops"])
            if not backlog["batches"]:
                self.archive.received_waiting.wait(IDLE_POLL_S)
                self.archive.received_waiting.clear()
                continue
            now = time.monotonic()
            if backlog["newest_at"] != newest:
                newest, changed = backlog["newest_at"], now
            if now - changed < self.quiet_s and not self._overdue(backlog["oldest_at"]):
                self._stop.wait(PAUSE_POLL_S)
                continue
            try:
                metrics.RECEIVED_APPLIED.inc(self.archive.apply_received())
            except Exception:
                log.exception("a stored push batch could not be applied; trying again")
                self._stop.wait(RETRY_S)

    def _overdue(self, oldest_at: str) -> bool:
        waited = self.archive.clock.now() - parse_iso(oldest_at)
        return waited.total_seconds() >= self.max_wait_s
