"""The archive as the API, the CLIs and the HR inbox use it: each method is one
transaction on the engine, applying the company's rules (server/rules/*) to the
stores (server/archive/store.py). Backend-free: the engine is SQLite or PostgreSQL.

Raises ArchiveError (and its kinds) when a rule refuses, StorageError when the
storage fails; either way nothing was written.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from schema.clock import iso
from schema.enums import OwnershipSource, RepTier
from schema.models import CustomerCreate, CustomerPatch, OpResult

from ..archive.engine import Engine, UniqueViolation
from ..archive.errors import ArchiveError, Conflict, NotFound, Unauthorized
from ..archive.sqlstore import SqlStore
from ..archive.store import Device, PullPage, Store
from . import (
    audit,
    cards,
    departures,
    duplicates,
    enrollment,
    imports,
    leases,
    operations,
    push_turns,
    received,
    staff,
    wipes,
)
from .archive_attachments import AttachmentMethods
from .archive_console import ConsoleMethods
from .archive_ops import OpsMethods
from .archive_plans import PlanMethods
from .archive_pool import PoolMethods
from .archive_review import ReviewMethods
from .archive_staff import StaffMethods
from .facade import ArchiveBase, customer_of, rep_of, visit_filters
from .feed import read_page
from .push_turns import OutOfTurn

# Meta rows every archive has from its first day (written by `initialize`).
_DEFAULT_META = {"card_counter": "0"}


class Archive(StaffMethods, ReviewMethods, PoolMethods, PlanMethods, ConsoleMethods,
              OpsMethods, AttachmentMethods, ArchiveBase):
    """The master archive over one engine. Thread-safe when the engine is. The
    company's newer rules live in the mixins, one file per concept."""

    @staticmethod
    def initialize(engine: Engine) -> None:
        """Give a freshly migrated archive its identity; idempotent."""
        with engine.write() as tx:
            store = SqlStore(tx)
            if store.meta("archive_epoch") is None:
                store.set_meta("archive_epoch", uuid.uuid4().hex)
            for key, value in _DEFAULT_META.items():
                if store.meta(key) is None:
                    store.set_meta(key, value)
            duplicates.backfill(store)  # cards from before the keys existed; once

    def ping(self) -> None:
        """Raise StorageError if the archive cannot be read."""
        with self._read() as s:
            s.meta("archive_epoch")

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> str:
        return self.engine.describe()

    def current_epoch(self) -> str:
        """The archive's identity as stored now: read each time, never cached, because
        another worker or `fieldvault-server new-epoch` may have changed it."""
        with self._read(one_statement=True) as s:
            return s.meta("archive_epoch") or ""

    @property
    def epoch(self) -> str:
        return self.current_epoch()

    # --- epochs, audit, exports ---------------------------------------------------

    def start_new_epoch(self, note: str) -> str:
        """Give the archive a new identity, e.g. after a restore: agents that see
        it reconcile what the archive may have lost before pulling again."""
        epoch = uuid.uuid4().hex
        with self._write() as s:
            s.set_meta("archive_epoch", epoch)
            s.set_meta("epoch_note", f"{self.now()} {note}")
            audit.append(s, self.now(), "admin", "archive.new_epoch", epoch, {"note": note})
        return epoch

    def record_export(self, what: str, count: int, filters: dict[str, Any], by: str = "admin") -> None:
        """Customer data leaving the archive (admin listings) is logged in the audit chain."""
        with self._write() as s:
            audit.append(s, self.now(), by, f"export.{what}", "", {"count": count, **filters})

    def audit_verify(self) -> audit.Verdict:
        with self._read() as s:
            return audit.verify(s.audit_all())

    def audit_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The most recent `limit` entries (all for None), oldest first."""
        with self._read() as s:
            rows = s.audit_entries(limit)
        for r in rows:
            r["details"] = orjson.loads(r["details"])
        return rows

    def audit_count(self) -> int:
        with self._read() as s:
            return s.count_audit()

    # --- reps ----------------------------------------------------------------------

    def add_rep(self, name: str, manager: str | None = None, tier: str = "mid") -> dict[str, Any]:
        name = name.strip()
        if not name or len(name) > 200:
            raise ArchiveError("invalid_name", "a rep needs a name of 1-200 characters")
        try:
            tier = RepTier(tier).value
        except ValueError:
            raise ArchiveError("invalid_tier", "tier must be senior, mid or junior") from None
        rep_id, now = "rep_" + secrets.token_hex(4), self.now()
        with self._write() as s:
            manager_id = rep_of(s, manager)["id"] if manager else None
            rep: dict[str, Any] = {"id": rep_id, "name": name, "manager_id": manager_id,
                                   "tier": tier, "active": 1, "created_at": now}
            if s.rep(name) is not None:
                raise Conflict("duplicate_rep", f"a rep named {name!r} already exists")
            s.insert_rep(rep)
            audit.append(s, now, "admin", "rep.add", rep_id,
                         {"name": name, "manager_id": manager_id, "tier": tier})
        return rep

    def list_reps(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return s.reps(limit)

    def resolve_rep(self, ref: str | None) -> dict[str, Any]:
        """A rep by id or exact name; NotFound `unknown_rep` otherwise."""
        with self._read() as s:
            return rep_of(s, ref)

    # --- enrollment and devices -------------------------------------------------------

    def create_enroll_code(self, rep: str, ttl: timedelta) -> tuple[str, str]:
        """A one-time code for `rep`, valid for `ttl`; only its hash is stored."""
        if ttl <= timedelta(0) or ttl > timedelta(days=30):
            raise ArchiveError("invalid_ttl", "the code's lifetime must be between 1s and 30 days")
        code = enrollment.new_code()
        now = self.now()
        expires = iso(self.clock.now() + ttl)
        with self._write() as s:
            rep_id = rep_of(s, rep)["id"]
            s.insert_enroll_code(enrollment.hash_code(code), rep_id, now, expires)
            audit.append(s, now, "admin", "enroll_code.create", rep_id, {"expires_at": expires})
        return code, expires

    def enroll(self, code: str, name: str, sign_pub: bytes, box_pub: bytes) -> Device:
        """A new device for the rep the one-time `code` names. Forbidden `invalid_code`
        (unknown, used or expired: one answer) or `rep_inactive`; Conflict `key_in_use`
        when the keys are another device's (the code stays unused)."""
        try:
            with self._write() as s:
                return enrollment.enroll(s, self.now(), code, name, sign_pub, box_pub)
        except UniqueViolation:  # the unique key indexes; the code stays unused
            raise Conflict("key_in_use", "these public keys belong to another device: "
                           "generate new keys and enroll again") from None

    def get_device(self, device_id: str) -> Device | None:
        # One statement (every signed request asks, before its body is read).
        with self._read(one_statement=True) as s:
            return s.device(device_id)

    def list_devices(self, rep: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return wipes.devices_as_seen(s, self.now(), rep_of(s, rep)["id"] if rep else None,
                                         limit)

    def remember_nonce(self, device_id: str, nonce: str, now_ts: float, window_s: float) -> bool:
        """Record a request nonce; False when it was seen before (a replay)."""
        # Not serial: a nonce is one independent upsert per request, and every
        # worker's requests would otherwise queue behind every push.
        with self._write(serial=False, durable=False) as s:
            return _remember_nonce(s, device_id, Nonce(nonce, now_ts, window_s), self.now())

    # --- customers ------------------------------------------------------------------------

    def add_customer(self, data: CustomerCreate, owner: str | None = None,
                     by: str = "admin") -> dict[str, Any]:
        now = self.now()
        with self._write() as s:
            owner_id = rep_of(s, owner)["id"] if owner else None
            duplicates.refuse(s, data.model_dump())
            row = cards.insert_customer(s, now, data, owner_id, by, OwnershipSource.assigned)
            audit.append(s, now, by, "customer.add", row["id"], {"owner": owner_id})
            return row

    def import_customers(self, rows: list[tuple[CustomerCreate, str | None]], by: str,
                         labels: list[str] | None = None) -> int:
        """All the cards or none (one transaction). A card that duplicates a stored one
        or an earlier row is refused (Conflict `duplicate_customer`) naming its label
        (`labels[i]`, default "row i+1")."""
        now = self.now()
        with self._write() as s:
            owners = {o: rep_of(s, o)["id"] for _, o in rows if o}
            duplicates.refuse_batch(s, ((labels[i] if labels else f"row {i + 1}", data.model_dump())
                                        for i, (data, _) in enumerate(rows)))
            for data, owner in rows:
                cards.insert_customer(s, now, data, owners[owner] if owner else None, by,
                                      OwnershipSource.assigned)
            audit.append(s, now, by, "customer.import", "", {"count": len(rows)})
        return len(rows)

    def import_csv(self, path: Path, by: str = "admin") -> int:
        """Import a CSV whose header names card fields (and optionally `owner`).
        Every row is checked first; one bad row imports nothing."""
        numbered = imports.read_numbered_cards_csv(path, self.resolve_rep)
        return self.import_customers([(data, owner) for _, data, owner in numbered], by,
                                     [f"{path.name} line {line}" for line, _, _ in numbered])

    def get_customer(self, ref: str) -> dict[str, Any]:
        with self._read() as s:
            return customer_of(s, ref)

    def edit_customer(self, ref: str, patch: CustomerPatch, by: str) -> dict[str, Any]:
        """An office edit: applied as a new revision (reps' edits merge against it)."""
        now = self.now()
        with self._write() as s:
            row = customer_of(s, ref)
            row.update(patch.changes())
            row["rev"] += 1
            row["updated_at"] = now
            cards.store_customer(s, row, by, None, None)
            audit.append(s, now, by, "customer.edit", row["id"],
                         {"fields": sorted(patch.model_fields_set)})
        return row

    def assign(self, ref: str, rep: str | None, reason: str, by: str) -> dict[str, Any]:
        """Give a customer to `rep` (None: the pool); the old owner's devices evict it."""
        with self._write() as s:
            new_owner = rep_of(s, rep)["id"] if rep else None
            return cards.assign(s, self.now(), customer_of(s, ref)["id"], new_owner, reason, by)

    def ownership_history(self, ref: str) -> list[dict[str, Any]]:
        with self._read() as s:
            return s.ownership(customer_of(s, ref)["id"])

    # Listings: `limit=None` means every row; `iter_*` stream, `count_*` give the total.

    def iter_customers(self, owner: str | None = None,
                       limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Streamed; an unknown owner raises now, not at the first row."""
        owner_id = self.resolve_rep(owner)["id"] if owner and owner != "pool" else None
        return self._stream(lambda s: s.customers(owner_id, owner == "pool", limit))

    def _stream(self, query: Any) -> Iterator[dict[str, Any]]:
        with self._read() as s:
            yield from query(s)

    def list_customers(self, owner: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_customers(owner, limit))

    def count_customers(self, owner: str | None = None) -> int:
        with self._read() as s:
            owner_id = rep_of(s, owner)["id"] if owner and owner != "pool" else None
            return s.count_customers(owner_id, owner == "pool")

    def iter_visits(self, rep: str | None = None, customer: str | None = None,
                    limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Streamed; an unknown rep or customer raises now, not at the first row."""
        with self._read() as s:
            rep_id, customer_id = visit_filters(s, rep, customer)
        return self._stream(lambda s: s.visits(rep_id, customer_id, limit))

    def list_visits(self, rep: str | None = None, customer: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_visits(rep, customer, limit))

    def count_visits(self, rep: str | None = None, customer: str | None = None) -> int:
        with self._read() as s:
            return s.count_visits(*visit_filters(s, rep, customer))

    def get_visit(self, visit_id: str) -> dict[str, Any]:
        with self._read() as s:
            row = s.visit(visit_id)
        if row is None:
            raise NotFound("unknown_visit", f"no visit {visit_id!r}")
        return row

    def visit_history(self, visit_id: str) -> list[dict[str, Any]]:
        """Every revision of the visit, oldest first (snapshot as a dict); [] if unknown."""
        with self._read() as s:
            return s.visit_revisions(visit_id)

    def customer_history(self, customer_id: str) -> list[dict[str, Any]]:
        """Every revision of the card, oldest first (snapshot as a dict); [] if unknown."""
        with self._read() as s:
            return s.customer_revisions(customer_id, 1)

    def applied_ops(self, device_id: str) -> list[dict[str, Any]]:
        """The device's ops the archive has answered (the idempotency record), by seq,
        each with its stored result as a dict."""
        with self._read() as s:
            rows = s.applied_ops(device_id)
        for r in rows:
            r["result"] = orjson.loads(r["result"])
        return rows

    def wipe_order(self, device_id: str) -> dict[str, Any] | None:
        """The device's wipe order with its receipt (a dict, or None before one came)."""
        with self._read() as s:
            row = s.wipe_order(device_id)
        if row is not None:
            row["receipt"] = orjson.loads(row["receipt"]) if row["receipt"] else None
        return row

    def list_revocations(self) -> list[dict[str, Any]]:
        """Every recorded departure, oldest first, `reassigned` decoded."""
        with self._read() as s:
            rows = s.revocations()
        for r in rows:
            r["reassigned"] = orjson.loads(r["reassigned"])
        return rows

    def conflicts(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return s.conflicts(limit)

    def quarantine(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return s.quarantined(limit)

    def counts(self) -> dict[str, int]:
        with self._read() as s:
            return s.counts()

    # --- sync ------------------------------------------------------------------------------

    def push(self, device: Device, ops: list[Any], after_seq: int = 0,
             wait_s: float = push_turns.WAIT_S, nonce: Nonce | None = None) -> list[OpResult]:
        """Apply one batch of the device's ops, after the batch it names as sent before it
        (`after_seq`, see push_turns.py); Conflict `push_out_of_order` when that one is
        not answered within `wait_s`. `nonce`: the request's, recorded in the batch's own
        transaction (auth.pushing_device); Unauthorized `unauthorized` for a replay."""
        self._wait_turn(device, after_seq, wait_s)
        try:
            with self._write() as s:
                _check_nonce(s, device, nonce, self.now())
                received.drain_device(s, device)  # its stored batches come first
                return operations.apply_ops(s, device, ops, self.clock.now())
        finally:
            self.push_turns.answered()

    def receive(self, device: Device, ops: list[Any], body: str, after_seq: int = 0,
                wait_s: float = push_turns.WAIT_S, nonce: Nonce | None = None
                ) -> list[dict[str, Any]]:
        """Store one batch of the device's ops (`body`: its request JSON, parsed) to be
        applied after this answer (rules/received.py); each op answers `received`, in
        its wire shape. Turns and nonces as for `push`."""
        self._wait_turn(device, after_seq, wait_s)
        try:
            # Not serial: the batch appends to neither the feed nor the audit chain, and
            # the device's turn orders its own batches (their ids grow in its order).
            with self._write(serial=False) as s:
                _check_nonce(s, device, nonce, self.now())
                results = received.receive(s, device, ops, body, self.now())
        finally:
            self.push_turns.answered()
        self.received_waiting.set()
        return results

    def apply_received(self) -> int:
        """Apply the oldest stored push batch of all devices' (rules/received.py) in
        one serial write; the ops it held, 0 when none waits."""
        with self._write() as s:
            return received.apply_oldest(s)

    def received_backlog(self) -> dict[str, Any]:
        """Stored push batches waiting: `batches`, `ops`, `oldest_at`, `newest_at`."""
        with self._read() as s:
            return s.received_backlog()

    def verdicts(self, device: Device, ops: list[tuple[str, int]]
                 ) -> tuple[list[OpResult], list[str], list[str], str]:
        """rules/received.verdicts in one snapshot, with the archive epoch."""
        with self._read() as s:
            return (*received.verdicts(s, device, ops), s.meta("archive_epoch") or "")

    def _wait_turn(self, device: Device, after_seq: int, wait_s: float) -> None:
        def answered() -> int:  # the device's highest answered op seq, as committed
            with self._read() as s:
                row = s.device_row(device.id)
                return int(row["last_seq"]) if row is not None else 0

        if after_seq == 0:  # the first batch of a push, or an agent that sends one at a time
            return
        try:
            self.push_turns.wait(answered, after_seq, wait_s)
        except OutOfTurn:
            raise Conflict("push_out_of_order", "the batch sent before this one has not been "
                           "applied: send this batch again after it") from None

    def pull(self, rep_id: str, after_seq: int, limit: int, count: bool = False,
             device_id: str | None = None, in_rows: bool = False) -> PullPage:
        """One page of the rep's changes (without those `device_id`'s pushes made);
        with `count`, how many feed rows are left from this page on (the total of a
        progress bar; the agent asks on its first page); `in_rows`: cards and visits as
        tuples (feed.read_page)."""
        with self._read() as s:
            return self._pull_in(s, rep_id, after_seq, limit, count, device_id, in_rows)

    def pull_after(self, rep_id: str, after: Callable[[str], int], limit: int,
                   count: bool = False, device_id: str | None = None, in_rows: bool = False,
                   ) -> tuple[str, PullPage]:
        """The archive epoch and `pull`'s page from the position `after(epoch)` names
        (a cursor of that epoch; it raises for another), in one snapshot: the pull route's
        one transaction instead of two (on PostgreSQL each is a pooled connection and
        round trips)."""
        with self._read() as s:
            epoch = s.meta("archive_epoch") or ""
            return epoch, self._pull_in(s, rep_id, after(epoch), limit, count, device_id, in_rows)

    @staticmethod
    def _pull_in(s: Store, rep_id: str, after_seq: int, limit: int, count: bool,
                 device_id: str | None, in_rows: bool) -> PullPage:
        page = read_page(s, rep_id, after_seq, limit, device_id, in_rows)
        if count:
            page.remaining = s.feed_size(rep_id, after_seq)
        return page

    def revisions(self, rep_id: str, customer_ids: list[str], visit_ids: list[str]
                  ) -> tuple[dict[str, int], dict[str, int]]:
        """Archive revs of the named records in the rep's scope (for epoch reconcile)."""
        with self._read() as s:
            return s.customer_revs(rep_id, customer_ids), s.visit_revs(rep_id, visit_ids)

    # --- leases and policy -------------------------------------------------------------------

    def policy(self) -> dict[str, Any]:
        with self._read() as s:
            return leases.policy(s)

    def set_policy(self, block_hours: float | None, wipe_days: float | None,
                   require_pin: bool | None, by: str = "admin",
                   timezone: str | None = None) -> dict[str, Any]:
        with self._write() as s:
            return leases.set_policy(s, self.now(), block_hours, wipe_days, require_pin, by,
                                     timezone)

    def issue_lease(self, device_id: str, have_epoch: int | None,
                    backlog: tuple[int, str | None] | None = None) -> dict[str, Any]:
        """A check-in: a new lease, and (`backlog`) the count and the time of the oldest
        of the device's unsynced operations, recorded in the same transaction."""
        # Not serial: a lease appends to neither the feed nor the audit chain, and the
        # device's row is locked while it is read and rewritten. Every sync checks in,
        # so this keeps half of a sync's writes out of the serial queue.
        with self._write(serial=False) as s:
            return leases.issue(s, self.clock.now(), device_id, have_epoch, backlog)

    # --- departures --------------------------------------------------------------------------

    def revoke(self, rep: str, reason: str, reassign_to: str = "pool",
               effective_at: str | None = None, by: str = "hr",
               source: str = "cli") -> dict[str, Any]:
        """Record a rep's departure; applied now, or when `effective_at` comes.
        Idempotent: revoking a rep again returns the existing departure."""
        return self.revoke_many([(rep, reason, reassign_to, effective_at)], by, source)[0]

    def revoke_many(self, entries: list[tuple[str, str, str, str | None]], by: str,
                    source: str) -> list[dict[str, Any]]:
        """Several departures (rep, reason, reassign_to, effective_at) in one
        transaction: one bad entry and none is applied."""
        with self._write() as s:
            return [departures.request(s, self.now(), rep_of(s, rep), reason, reassign_to, when,
                                       by, source)
                    for rep, reason, reassign_to, when in entries]

    def process_due_revocations(self, at: str | None = None) -> list[str]:
        """Apply departures whose effective time has come by `at` (default now; the
        server's job loop). Each in its own transaction; one already applied (by
        another worker) is skipped."""
        now = at or self.now()
        with self._read() as s:
            due = s.due_revocations(now)
        done = []
        for rid in due:
            with self._write() as s:
                record = s.revocation_by_id(rid)
                if record is not None and record["applied_at"] is None:
                    departures.apply(s, now, record)
                    done.append(record["rep_id"])
        return done

    def create_hr_token(self, name: str) -> str:
        """A bearer token for the HR system's API calls; only its hash is kept."""
        token = "fvhr_" + secrets.token_urlsafe(32)
        with self._write() as s:
            s.insert_hr_token(hashlib.sha256(token.encode()).hexdigest(), name, self.now())
            audit.append(s, self.now(), "admin", "hr_token.create", name)
        return token

    def check_hr_token(self, token: str) -> str | None:
        """The token's name if it is valid (not revoked, issued less than
        staff.HR_TOKEN_MAX_AGE ago). Looked up by SHA-256, then compared in constant
        time, so response time says nothing about the secret."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._read() as s:
            row = s.hr_token(digest)
        if row is None or not hmac.compare_digest(row["token_hash"], digest):
            return None
        if staff.expired(row["created_at"], staff.HR_TOKEN_MAX_AGE, self.clock.now()):
            return None
        return str(row["name"])

    def final_flush(self, device: Device, ops: list[Any], after_seq: int = 0,
                    wait_s: float = push_turns.WAIT_S, nonce: Nonce | None = None
                    ) -> tuple[list[OpResult], dict[str, Any]]:
        """A revoked device's last push, or the ops of its opened outbox envelopes:
        everything goes to quarantine for review (company data, not merged blindly),
        once per op_id, and the device gets its wipe order."""
        self._wait_turn(device, after_seq, wait_s)
        try:
            with self._write() as s:
                _check_nonce(s, device, nonce, self.now())
                # Stored while it was active, its earlier batches are applied as such.
                received.drain_device(s, device)
                results = operations.quarantine_ops(
                    s, device, ops, "final flush from a revoked device; held for review",
                    self.clock.now())
                return results, wipes.order_for(s, self.now(), device)
        finally:
            self.push_turns.answered()

    def record_wipe_receipt(self, device: Device, receipt: dict[str, Any]) -> None:
        """Conflict `unknown_order` when no wipe with that order_id was ordered."""
        with self._write() as s:
            wipes.record_receipt(s, self.now(), device, receipt)

    def departure_report(self, rep: str) -> dict[str, Any]:
        """What HR needs to see: when and by whom, devices wiped, customers, visits kept.
        NotFound `not_revoked` for a rep who has not left."""
        with self._read() as s:
            return departures.report(s, self.now(), rep_of(s, rep))


@dataclass(frozen=True)
class Nonce:
    """A signed request's nonce, its time (seconds) and the window replays are refused in."""

    value: str
    at: float
    window_s: float


def _remember_nonce(s: SqlStore, device_id: str, nonce: Nonce, now: str) -> bool:
    # The nonce and the device's last-seen time: one statement on PostgreSQL.
    fresh = s.remember_nonce(device_id, nonce.value, nonce.at, last_seen=now)
    # Nonces older than twice the accepted skew can never be replayed (their timestamps
    # are refused), so they are pruned now and then.
    if fresh and secrets.randbelow(64) == 0:
        s.prune_nonces(nonce.at - 2 * nonce.window_s)
    return fresh


def _check_nonce(s: SqlStore, device: Device, nonce: Nonce | None, now: str) -> None:
    """A push records its request's nonce in its own transaction: its signature was
    checked before its body was parsed (auth.pushing_device), and a replay is refused
    here, before anything is applied."""
    if nonce is not None and not _remember_nonce(s, device.id, nonce, now):
        raise Unauthorized("unauthorized", "replayed request (nonce already used)")


__all__ = ["Archive", "Nonce"]
