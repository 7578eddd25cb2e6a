"""`fieldvault run`: the local UI plus background sync, in one process.

A sync runs soon after each save (debounced: a burst of edits costs one sync), on
a timer, and when the rep presses "Sync now". While the server cannot be reached
the retries back off (doubling up to the timer period). Pages never wait on the
network: they read `snapshot()`, which the sync thread keeps current.

The schedule is a plain object over an injected clock (tests drive it with a
ManualClock); the thread only waits on an Event until the next due time. Other
background services (the attachment inbox watcher) plug in with `add_service`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from schema.clock import Clock, SystemClock, iso

from . import service
from .home import AgentConfig

DEBOUNCE = timedelta(seconds=2)
EVERY = timedelta(minutes=5)
RETRY_MIN = timedelta(seconds=10)


@dataclass
class Schedule:
    """When the next sync is due. Pure bookkeeping: no threads, no sleeping."""

    clock: Clock
    every: timedelta = EVERY
    debounce: timedelta = DEBOUNCE
    retry_min: timedelta = RETRY_MIN
    due: datetime | None = None
    failures: int = 0
    dirty: bool = False  # a save arrived while a sync was running

    def __post_init__(self) -> None:
        if self.due is None:
            self.due = self.clock.now()  # once at start

    def saved(self) -> None:
        """A change was saved: sync after the debounce (never later than already due)."""
        soon = self.clock.now() + self.debounce
        self.due = soon if self.due is None else min(self.due, soon)
        self.dirty = True

    def begin(self) -> None:
        """A sync starts: it takes every save made so far."""
        self.dirty = False

    def now_please(self) -> None:
        self.due = self.clock.now()

    def succeeded(self) -> None:
        """Next on the timer, or soon if something was saved while it ran."""
        self.failures = 0
        self.due = self.clock.now() + (self.debounce if self.dirty else self.every)

    def failed(self) -> None:
        """Offline: retry after retry_min, doubling, never beyond `every`."""
        self.failures += 1
        delay = min(self.retry_min * (2 ** (self.failures - 1)), self.every)
        self.due = self.clock.now() + delay

    def wait_seconds(self) -> float:
        assert self.due is not None
        return max(0.0, (self.due - self.clock.now()).total_seconds())


class Service(Protocol):
    """A background part of `fieldvault run` (e.g. the attachment inbox watcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class SyncState:
    online: bool | None = None  # None: not tried yet in this process
    syncing: bool = False
    last_attempt: str | None = None
    last_success: str | None = None
    error: str = ""
    error_code: str = ""
    pending: int | None = None
    wiped: bool = False
    last_result: dict[str, Any] = field(default_factory=dict)


class Runner:
    """The sync thread. `auto`: sync on the timer and after saves (`fieldvault run`);
    without it only "Sync now" syncs (`fieldvault ui`)."""

    def __init__(self, home: Path, config: AgentConfig, clock: Clock | None = None,
                 schedule: Schedule | None = None, auto: bool = True, pin: str | None = None,
                 before_wipe: Callable[[], None] | None = None,
                 pending: Callable[[], int | None] | None = None) -> None:
        self.home = home
        self.config = config
        self.clock = clock or SystemClock()
        self.schedule = schedule or Schedule(self.clock)
        self.auto = auto
        self.pin = pin
        self.before_wipe = before_wipe
        self.pending = pending
        self.state = SyncState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._manual = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._services: list[Service] = []

    def add_service(self, svc: Service) -> None:
        self._services.append(svc)

    # --- what pages call (never blocking) --------------------------------------------

    def poke(self) -> None:
        if self.auto:
            with self._lock:
                self.schedule.saved()
            self._wake.set()

    def sync_now(self) -> None:
        with self._lock:
            self._manual = True
            self.schedule.now_please()
        self._wake.set()

    def snapshot(self) -> dict[str, Any]:
        s = self.state
        pending = self.pending() if self.pending else s.pending
        return {"online": s.online, "syncing": s.syncing, "last_attempt": s.last_attempt,
                "last_success": s.last_success, "error": s.error, "error_code": s.error_code,
                "pending": pending, "wiped": s.wiped, "last_result": s.last_result}

    # --- the thread --------------------------------------------------------------------

    def start(self) -> None:
        for svc in self._services:
            svc.start()
        self._thread = threading.Thread(target=self._loop, name="fieldvault-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for svc in self._services:
            svc.stop()

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.state.wiped:
            with self._lock:
                wait = self.schedule.wait_seconds() if (self.auto or self._manual) else None
            if wait is None or wait > 0:
                self._wake.wait(timeout=wait)
                self._wake.clear()
                continue
            with self._lock:
                self._manual = False
                self.schedule.begin()
            self.run_once()

    def run_once(self) -> None:
        """One sync now, recording its outcome (also what tests call directly)."""
        from .keystore import KeyError_
        from .store import StoreError
        from .transport import Offline

        self.state.syncing = True
        self.state.last_attempt = iso(self.clock.now())
        try:
            outcome = service.sync(self.home, self.config, self.pin,
                                   before_wipe=self.before_wipe)
        except service.Revoked:
            self.state.wiped = True
            self.state.online = True
        except service.SyncFailed as exc:
            self.state.online = not isinstance(exc.cause, Offline)
            self.state.error = str(exc)
            self.state.error_code = exc.stage
            with self._lock:
                self.schedule.failed()
        except (StoreError, KeyError_) as exc:
            self._failed("local", str(exc))
        except Exception as exc:  # noqa: BLE001 - the thread must outlive one bad sync
            self._failed("internal", f"{type(exc).__name__}: {exc}")
        else:
            self.state.online = True
            self.state.error = self.state.error_code = ""
            self.state.last_success = iso(self.clock.now())
            self.state.last_result = outcome.as_dict()
            with self._lock:
                self.schedule.succeeded()
        finally:
            self.state.syncing = False

    def _failed(self, code: str, message: str) -> None:
        self.state.error, self.state.error_code = message, code
        with self._lock:
            self.schedule.failed()
