"""The archive interface: what every storage backend must provide.

Contract for implementations (checked by tests/test_archive_contract.py,
which every backend must pass):
- `push` is idempotent per `op_id`: applying the same operation again returns
  the stored result and writes nothing.
- A call either commits entirely or changes nothing.
- Nothing is hard-deleted: customers and visits are voided, revisions,
  ownership history and quarantine are append-only.
- `pull` costs in proportion to the rep's changes since the cursor, not to
  the archive's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from schema.models import CustomerCreate, CustomerPatch, OpResult


class ArchiveError(Exception):
    """A request the archive refuses; `code` is the stable machine-readable reason."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Device:
    id: str
    rep_id: str
    name: str
    sign_public_key: bytes
    box_public_key: bytes
    state: str


@dataclass
class PullPage:
    customers: list[dict[str, Any]] = field(default_factory=list)
    visits: list[dict[str, Any]] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    last_seq: int = 0
    more: bool = False


class Archive(Protocol):
    epoch: str

    def ping(self) -> None:
        """Raise if the archive cannot be read."""
        ...

    # reps and devices
    def add_rep(self, name: str, manager: str | None, tier: str) -> dict[str, Any]: ...
    def list_reps(self) -> list[dict[str, Any]]: ...
    def resolve_rep(self, ref: str) -> dict[str, Any]: ...
    def create_enroll_code(self, rep: str, ttl: timedelta) -> tuple[str, str]: ...
    def enroll(self, code: str, name: str, sign_pub: bytes, box_pub: bytes) -> Device: ...
    def get_device(self, device_id: str) -> Device | None: ...
    def list_devices(self, rep: str | None = None) -> list[dict[str, Any]]: ...
    def remember_nonce(self, device_id: str, nonce: str, now_ts: float, window_s: float) -> bool:
        """Record a request nonce; False when it was seen before (a replay)."""
        ...

    # customers, visits, history
    def add_customer(self, data: CustomerCreate, owner: str | None, by: str) -> dict[str, Any]: ...
    def import_customers(self, rows: list[tuple[CustomerCreate, str | None]], by: str) -> int: ...
    def edit_customer(self, ref: str, patch: CustomerPatch, by: str) -> dict[str, Any]: ...
    def assign(self, ref: str, rep: str | None, reason: str, by: str) -> dict[str, Any]: ...
    def get_customer(self, ref: str) -> dict[str, Any]: ...
    def list_customers(self, owner: str | None = None) -> list[dict[str, Any]]: ...
    def list_visits(
        self, rep: str | None = None, customer: str | None = None
    ) -> list[dict[str, Any]]: ...
    def ownership_history(self, ref: str) -> list[dict[str, Any]]: ...
    def conflicts(self) -> list[dict[str, Any]]: ...
    def quarantine(self) -> list[dict[str, Any]]: ...
    def counts(self) -> dict[str, int]: ...

    # sync
    def push(self, device: Device, ops: list[Any]) -> list[OpResult]: ...
    def pull(self, rep_id: str, after_seq: int, limit: int) -> PullPage: ...
    def revisions(
        self, rep_id: str, customer_ids: list[str], visit_ids: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Archive revs of the named records in the rep's scope (for epoch reconcile)."""
        ...
    def start_new_epoch(self, note: str) -> str: ...

    # leases and policy
    def policy(self) -> dict[str, Any]: ...
    def set_policy(self, block_hours: float | None, wipe_days: float | None,
                   require_pin: bool | None, by: str = "admin") -> dict[str, Any]: ...
    def issue_lease(self, device_id: str, have_epoch: int | None) -> dict[str, Any]: ...

    # departures
    def revoke(self, rep: str, reason: str, reassign_to: str = "pool",
               effective_at: str | None = None, by: str = "hr",
               source: str = "cli") -> dict[str, Any]: ...
    def revoke_many(self, entries: list[tuple[str, str, str, str | None]], by: str,
                    source: str) -> list[dict[str, Any]]:
        """All departures or none (one transaction)."""
        ...
    def process_due_revocations(self) -> list[dict[str, Any]]: ...
    def create_hr_token(self, name: str) -> str: ...
    def check_hr_token(self, token: str) -> str | None: ...
    def final_flush(self, device: Device, ops: list[Any]) -> tuple[list[OpResult], dict[str, Any]]:
        """Quarantine a revoked device's last ops and return its wipe order (idempotent)."""
        ...
    def record_wipe_receipt(self, device: Device, receipt: dict[str, Any]) -> None: ...
    def departure_report(self, rep: str) -> dict[str, Any]: ...
