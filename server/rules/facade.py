"""What every part of the Archive facade shares: the engine, the clock, and the
one-transaction-per-method plumbing. The facade is one class (`archive.Archive`)
assembled from parts, one per concept (`archive_staff.py`, `archive_pool.py`, ...).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from schema.clock import Clock, SystemClock, iso

from ..archive.engine import Engine
from ..archive.errors import ArchiveError, NotFound
from ..archive.sqlstore import SqlStore
from ..archive.store import CardFilter, Store
from . import access
from .push_turns import PushTurns


class ArchiveBase:
    """The archive's engine, clock and push turns; `_read()`/`_write()` give a store over one
    transaction."""

    def __init__(self, engine: Engine, clock: Clock | None = None,
                 data_dir: Path | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        # The server's own folder (keys, filed HR files), whatever the backend.
        self.data_dir = data_dir
        # Wakes a device's push batch waiting for the one before it (push_turns.py).
        self.push_turns = PushTurns()
        # Set when a push batch is stored to be applied later: wakes this process's
        # applier (server/applier.py).
        self.received_waiting = threading.Event()

    # --- plumbing ----------------------------------------------------------------

    def _read(self, one_statement: bool = False) -> StoreContext:
        """`one_statement`: the block runs one query (Engine.read)."""
        return StoreContext(self.engine, write=False, one_statement=one_statement)

    def _write(self, serial: bool = True, durable: bool = True) -> StoreContext:
        return StoreContext(self.engine, write=True, serial=serial, durable=durable)

    def now(self) -> str:
        return iso(self.clock.now())



class StoreContext:
    """`with archive._write() as store:` — a SqlStore over one engine transaction."""

    def __init__(self, engine: Engine, write: bool, serial: bool = True,
                 durable: bool = True, one_statement: bool = False) -> None:
        self._cm = engine.write(serial, durable) if write else engine.read(one_statement)

    def __enter__(self) -> SqlStore:
        return SqlStore(self._cm.__enter__())

    def __exit__(self, *exc: Any) -> bool | None:
        return self._cm.__exit__(*exc)


def rep_of(s: Store, ref: str | None) -> dict[str, Any]:
    row = s.rep(ref) if ref else None
    if row is None:
        raise NotFound("unknown_rep", f"no rep {ref!r}: see `fieldvault-server rep list`")
    return row


def customer_of(s: Store, ref: str) -> dict[str, Any]:
    row = s.customer_by_ref(ref)
    if row is None:
        raise NotFound("unknown_customer", f"no customer {ref!r}")
    return row


def visit_filters(s: Store, rep: str | None, customer: str | None) -> tuple[str | None, str | None]:
    return (rep_of(s, rep)["id"] if rep else None,
            customer_of(s, customer)["id"] if customer else None)


def staff_card_filter(s: Store, by: str, now: datetime, owner: str | None = None,
                      grade: str | None = None, in_pool: bool | None = None,
                      locked: bool | None = None,
                      not_visited_days: int | None = None) -> CardFilter:
    """The cards `by` may see (a manager: their team's and the pool's) narrowed by the
    staff lists' filters. Raises ArchiveError invalid_filter for a filter out of range or
    an owner together with the pool, Forbidden when `by` may not read the owner's cards."""
    if not_visited_days is not None and not 0 <= not_visited_days <= 36500:
        raise ArchiveError("invalid_filter", "not visited for: 0-36500 days")
    if grade is not None and grade not in ("A", "B", "C"):
        raise ArchiveError("invalid_filter", "grade is A, B or C")
    who = access.staff_member(s, by)
    owner_id = rep_of(s, owner)["id"] if owner else None
    access.authorize(s, who, "customer.read", owner_id)
    if owner_id is not None and in_pool:
        raise ArchiveError("invalid_filter", "a pool card has no owner: give either an owner "
                           "or the pool")
    team = access.scope(s, who)
    owners: tuple[str, ...] | None = tuple(sorted(team)) if team is not None else None
    if owner_id is not None:
        owners = (owner_id,)
    elif in_pool:
        owners = ()
    served = iso(now - timedelta(days=not_visited_days)) if not_visited_days is not None else None
    return CardFilter(owners=owners, pool=owner_id is None and in_pool is not False, grade=grade,
                      locked=locked, served_before=served)
