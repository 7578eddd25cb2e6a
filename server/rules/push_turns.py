"""The order of one device's push batches when two are in flight at once.

The agent sends the next batch of a push before the answer to the one before it
arrives (agent/sync.py), so the archive is never idle between batches. Each batch
names the last op seq of the batch sent before it (`after_seq`), and is applied only
once the archive has answered that one: the device's ops are still applied in its
order, whichever request reaches the server first.

A waiting batch holds no transaction: it waits for the device's answered seq
(`devices.last_seq`) to reach `after_seq`. Batches applied in this process wake it at
once; one applied by another worker process is seen within POLL_S.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A worker process does not hear of another's commits: it looks again this often.
POLL_S = 0.02
# How long a batch waits for the one before it: far beyond a batch's time to apply
# (well under a second), short enough that a batch whose predecessor failed is
# refused while its sync still waits for the answer.
WAIT_S = 30.0


class OutOfTurn(Exception):
    """The batch before this one was not answered within the wait: the device sends
    this batch again (the one before it failed, or the server is far behind)."""


class PushTurns:
    """Wakes a waiting batch when a batch of this process has been answered."""

    def __init__(self) -> None:
        self._answered = threading.Condition()
        self._generation = 0  # bumped at each answer: a wake-up is never missed

    def wait(self, answered_seq: Callable[[], int], after_seq: int, timeout_s: float) -> None:
        """Return once `answered_seq()` (read from the archive) is at least `after_seq`;
        OutOfTurn after `timeout_s`. Bounded: every wait has a deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._answered:
                generation = self._generation
            if answered_seq() >= after_seq:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise OutOfTurn
            with self._answered:
                if self._generation == generation:
                    self._answered.wait(min(left, POLL_S))

    def answered(self) -> None:
        """A batch's transaction has committed: every waiting batch looks again."""
        with self._answered:
            self._generation += 1
            self._answered.notify_all()
