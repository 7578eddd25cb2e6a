"""The archive's storage, as narrow protocols the company's rules (server/rules/) use.

A store is bound to one open transaction (`Engine.write()` or `read()`): every
method runs inside it, so a caller's sequence of calls lands whole or not at
all. No method decides anything the company cares about (who may, what wins):
those are rules. Unless said otherwise a method is not idempotent, returns plain
dicts with the table's columns, raises `UniqueViolation` on a duplicate key and
`StorageError` when the storage fails; nothing here raises `ArchiveError`.

History is append-only and the database enforces it (triggers): customers,
visits and quarantined ops are never deleted; revisions, ownership history and
the audit log are never changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


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
    plans: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0
    more: bool = False
    # The pool's rules as of this page's snapshot (feed.pool_rules): every pull has them.
    pool_rules: dict[str, Any] | None = None
    # Feed rows from this page to the end, when asked (an agent's progress bar).
    remaining: int | None = None
    # A page asked for in rows (feed.read_page `rows`): the cards and visits as
    # Store.customer_rows / visit_rows read them (`customers`, `visits` stay empty), and
    # the attachments of those visits that name any.
    customer_rows: list[tuple[Any, ...]] = field(default_factory=list)
    visit_rows: list[tuple[Any, ...]] = field(default_factory=list)
    attachments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedRow:
    seq: int
    kind: str  # customer | visit | grant | evict | plan
    entity_id: str
    customer_id: str


class Meta(Protocol):
    def meta(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        ...

    def metas(self, keys: list[str]) -> dict[str, str]:
        """key -> value of the named keys that are stored, in one read (a policy
        read on every pull)."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any; idempotent."""
        ...

    def next_card_number(self) -> int:
        """The next card number (1, 2, ...): never handed out twice, even across
        workers, because it is taken inside a serial write."""
        ...


class Directory(Protocol):
    """Reps, enrollment codes, devices, request nonces and HR tokens."""

    def insert_rep(self, rep: dict[str, Any]) -> None:
        """A new rep row; UniqueViolation when the id or name exists."""
        ...

    def rep(self, ref: str) -> dict[str, Any] | None:
        """The rep whose id or exact name is `ref`."""
        ...

    def reps(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Reps by name, each with `customers` and `devices` counts."""
        ...

    def rep_names(self) -> dict[str, str]:
        """Every rep's id -> name."""
        ...

    def set_rep_active(self, rep_id: str, active: bool) -> None: ...

    def team(self, manager_id: str, without: str) -> list[dict[str, Any]]:
        """Active reps (id, tier) under `manager_id` other than `without`, oldest first."""
        ...

    def insert_enroll_code(self, code_hash: str, rep_id: str, created_at: str,
                           expires_at: str) -> None: ...

    def enroll_code(self, code_hash: str) -> dict[str, Any] | None:
        """The code row (rep_id, expires_at, used_at), whatever its state."""
        ...

    def use_enroll_code(self, code_hash: str, device_id: str, at: str) -> None: ...

    def insert_device(self, device_id: str, rep_id: str, name: str, sign_pub: bytes,
                      box_pub: bytes, enrolled_at: str) -> None:
        """A new active device; UniqueViolation when either public key is another
        device's."""
        ...

    def device(self, device_id: str) -> Device | None: ...

    def device_row(self, device_id: str, lock: bool = False) -> dict[str, Any] | None:
        """Every column of the device, lease secrets included (server use only). With
        `lock`, no other transaction changes the row until this one ends (for a
        read-then-write outside a serial write)."""
        ...

    def devices(self, rep_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Devices (all, or the rep's) by enrollment time with the rep's name and the
        wipe order's issue and receipt times; no secrets."""
        ...

    def set_device_seen(self, device_id: str, at: str) -> None: ...

    def revoke_devices(self, rep_id: str, at: str) -> list[str]:
        """Mark the rep's active devices revoked and drop their lease secrets;
        returns their ids."""
        ...

    def set_device_state(self, device_id: str, state: str, only_from: str | None = None) -> None:
        """Set the device's state (only when it is `only_from`, if given)."""
        ...

    def set_lease(self, device_id: str, epoch: int, secret: bytes, prev_secret: bytes | None,
                  issued_at: str, block_at: str, wipe_at: str,
                  backlog: tuple[int, str | None] | None = None) -> None:
        """The device's new lease; with `backlog`, set_device_backlog's two values in the
        same statement (a check-in writes both)."""
        ...

    def set_device_backlog(self, device_id: str, unsynced_ops: int,
                           oldest_unsynced_at: str | None) -> None:
        """Record what the device reported at check-in about its unsynced work: how many
        operations, and when the oldest of them was made (None when there are none)."""
        ...

    def shrink_device_backlog(self, device_id: str, pushed: int) -> None:
        """`pushed` of the device's reported unsynced operations arrived: the count
        drops by that much (not below 0); the oldest's time is forgotten at 0, kept
        otherwise (an upper bound: what is left is no older). Nothing reported, no change."""
        ...

    def raise_last_seq(self, device_id: str, seq: int) -> None:
        """The device's highest applied op seq becomes at least `seq`."""
        ...

    def remember_nonce(self, device_id: str, nonce: str, seen_at: float,
                       last_seen: str | None = None) -> bool:
        """Record a request nonce; False when it was recorded before. Idempotent. With
        `last_seen`, also set_device_seen (in the same statement where the engine can:
        every request does both)."""
        ...

    def prune_nonces(self, before: float) -> None:
        """Forget nonces seen before `before` (they can no longer be replayed)."""
        ...

    def insert_hr_token(self, token_hash: str, name: str, at: str) -> None: ...

    def hr_token(self, token_hash: str) -> dict[str, Any] | None:
        """The unrevoked token row (token_hash, name, created_at) with this hash."""
        ...


class Cards(Protocol):
    """Customer cards, their revisions and ownership history."""

    def insert_customer(self, row: dict[str, Any]) -> None:
        """A new card; UniqueViolation when the id or card number exists."""
        ...

    def customer(self, customer_id: str) -> dict[str, Any] | None: ...

    def customer_by_ref(self, ref: str) -> dict[str, Any] | None:
        """The card whose id or card number is `ref`."""
        ...

    def update_customer(self, row: dict[str, Any]) -> None:
        """Overwrite the card `row["id"]` with `row`."""
        ...

    def set_last_served(self, customer_id: str, at: str) -> None: ...

    def customers(self, owner: str | None, pool: bool = False,
                  limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Cards by card number: all, the pool's (`pool`), or `owner`'s; streamed."""
        ...

    def count_customers(self, owner: str | None, pool: bool = False) -> int: ...

    def customers_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """The named cards that exist, in no particular order."""
        ...

    def customer_heads(self, ids: list[str]) -> list[dict[str, Any]]:
        """What a push batch's visits need of their cards, without their long text: id,
        owner_rep_id, owned_since, created_at and last_served_at of the named cards
        that exist, in no particular order."""
        ...

    def customer_owners(self, ids: list[str]) -> dict[str, str | None]:
        """id -> owner rep (None: in the pool) of the named cards that exist: what a
        pull page asks of every card its visits name, without reading the whole cards."""
        ...

    def customer_revs(self, rep_id: str, ids: list[str]) -> dict[str, int]:
        """id -> rev of the named cards the rep owns or made."""
        ...

    def insert_customer_revision(self, row: dict[str, Any], seq: int, author: str,
                                 device_id: str | None, op_id: str | None, at: str) -> None:
        """Append the snapshot `row` as revision `row["rev"]`."""
        ...

    def customer_revisions(self, customer_id: str, from_rev: int) -> list[dict[str, Any]]:
        """Every column of the revisions from `from_rev` on, oldest first, snapshot as a dict."""
        ...

    def card_maker(self, customer_id: str) -> dict[str, Any] | None:
        """For a card made on a laptop: that device's enrolled_at and rep_id."""
        ...

    def card_makers(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        """`card_maker` of many cards at once (a push batch), by customer id; cards
        not made on a laptop (or unknown) are absent."""
        ...

    def insert_ownership(self, customer_id: str, from_rep: str | None, to_rep: str | None,
                         source: str, reason: str, by: str, at: str) -> None: ...

    def ownership(self, customer_id: str) -> list[dict[str, Any]]:
        """The card's ownership changes, oldest first."""
        ...

    def ownerships(self, customer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """`ownership` of many cards at once, by customer id (a card with no change: [])."""
        ...


class Visits(Protocol):
    def insert_visit(self, row: dict[str, Any]) -> None:
        """A new visit; UniqueViolation when the id exists, raised by the transaction's
        next statement or its commit (the write is deferred: engine.Tx.defer)."""
        ...

    def update_visit(self, row: dict[str, Any]) -> None: ...

    def visit(self, visit_id: str) -> dict[str, Any] | None: ...

    def visits_by_ids(self, ids: list[str]) -> list[dict[str, Any]]: ...

    def visits_of_customers(self, customer_ids: list[str]) -> list[dict[str, Any]]:
        """Every visit (any author) of the named customers."""
        ...

    def customer_rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        """The named cards as a pull sends them in rows: `schema.fields.PULL_CUSTOMER_ROW`
        in that order, `locked` as 0/1; in any order, absent ids left out."""
        ...

    def visit_rows(self, ids: list[str], of_customers: bool = False) -> list[tuple[Any, ...]]:
        """The named visits (or, `of_customers`, every visit of the named customers) as a
        pull sends them in rows: `schema.fields.PULL_VISIT_ROW` in that order, `planned`
        as 0/1, a pending call-back as null (the rep is never told one is coming)."""
        ...

    def visits(self, rep_id: str | None, customer_id: str | None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Visits by start time, filtered by author and customer when given; streamed."""
        ...

    def count_visits(self, rep_id: str | None, customer_id: str | None) -> int: ...

    def visit_revs(self, rep_id: str, ids: list[str]) -> dict[str, int]:
        """id -> rev of the named visits the rep wrote."""
        ...

    def insert_visit_revision(self, row: dict[str, Any], seq: int, author: str,
                              device_id: str | None, op_id: str | None, at: str) -> None: ...

    def visit_revisions(self, visit_id: str) -> list[dict[str, Any]]:
        """Every column of the visit's revisions, oldest first, snapshot as a dict."""
        ...


class Feed(Protocol):
    def append_feed(self, rep_id: str | None, kind: str, entity_id: str, customer_id: str,
                    origin: str | None = None) -> int:
        """A change addressed to `rep_id`; returns its sequence number, higher than
        every sequence committed before (only inside a serial write). `origin`: the
        device whose pushed operation made the change (it has the result already)."""
        ...

    def feed(self, rep_id: str, after_seq: int, limit: int,
             skip_origin: str | None = None) -> list[FeedRow]:
        """The rep's changes after `after_seq`, in sequence order, leaving out those
        whose origin is `skip_origin`. Costs in proportion to the rows read, not to
        the archive."""
        ...

    def feed_page(self, rep_id: str, after_seq: int, limit: int,
                  skip_origin: str | None = None) -> tuple[list[FeedRow], int]:
        """`feed` and `feed_last` in one statement: the page, and the rep's last
        sequence number after `after_seq` (whatever its origin; `after_seq` when none)."""
        ...

    def feed_last(self, rep_id: str, after_seq: int) -> int:
        """The rep's last feed sequence number, or `after_seq` when there is none after
        it (an index lookup)."""
        ...

    def feed_size(self, rep_id: str, after_seq: int) -> int:
        """How many feed rows the rep has after `after_seq` (a progress bar's total);
        costs in proportion to them, not to the archive."""
        ...


class Ops(Protocol):
    def applied_op(self, op_id: str) -> dict[str, Any] | None:
        """(device_id, seq, result JSON, at) of an op applied before, or None."""
        ...

    def applied_ops_by_ids(self, op_ids: list[str]) -> dict[str, dict[str, Any]]:
        """`applied_op` of many op ids at once (a push batch), by op_id; absent: new."""
        ...

    def applied_ops(self, device_id: str) -> list[dict[str, Any]]:
        """The device's answered ops (op_id, device_id, seq, result JSON, at) by seq."""
        ...

    def record_op(self, op_id: str, device_id: str, seq: int, result: str, at: str) -> None:
        """Remember an op's result; UniqueViolation when `op_id` is recorded (deferred
        like insert_visit)."""
        ...


class Received(Protocol):
    """Push batches stored before their rules run (rules/received.py), oldest first.
    A row: id, device_id, first_seq, last_seq, op_count, body (the request's JSON text),
    received_at."""

    def insert_received(self, device_id: str, first_seq: int, last_seq: int, op_count: int,
                        body: str, received_at: str) -> int:
        """Store a batch; its id (ids grow in the order batches are stored)."""
        ...

    def oldest_received(self) -> dict[str, Any] | None:
        """The batch stored first of all devices', with its body; None when none waits."""
        ...

    def received_of(self, device_id: str) -> list[dict[str, Any]]:
        """The device's stored batches, oldest first, with their bodies."""
        ...

    def received_ranges(self, device_id: str) -> list[tuple[int, int]]:
        """(first_seq, last_seq) of each of the device's stored batches, without bodies."""
        ...

    def delete_received(self, received_id: int) -> None:
        """Drop an applied batch; nothing when it is gone already."""
        ...

    def received_backlog(self) -> dict[str, Any]:
        """`batches` and `ops` waiting, `oldest_at` and `newest_at` (None when empty)."""
        ...


class Review(Protocol):
    """What waits for a person: visits to review (拜访记录审核) and to call back (电话回访),
    disputes, quarantined ops and merge conflicts. `under` (a rep id) limits a listing
    to the reps below that rep in the manager tree, transitively (a manager's team);
    None: everyone."""

    def insert_quarantine(self, row: dict[str, Any]) -> None:
        """Hold an op; UniqueViolation when its op_id is held already."""
        ...

    def is_quarantined(self, entity_id: str) -> bool:
        """Whether any held op is about `entity_id`."""
        ...

    def quarantined(self, limit: int | None = None,
                    open_only: bool = False) -> list[dict[str, Any]]:
        """Held ops, oldest first, payload as a dict; `open_only`: not decided yet."""
        ...

    def count_quarantined(self, rep_id: str | None = None) -> int: ...

    def held_op(self, held_id: int) -> dict[str, Any] | None:
        """One held op by its id (every column, payload as a dict), or None."""
        ...

    def decide_held_op(self, held_id: int, decision: str, by: str, reason: str, at: str) -> bool:
        """Record the decision (accepted|rejected) on a held op not decided yet; False
        when it was decided already (nothing changed). The op itself is never deleted."""
        ...

    def insert_conflict(self, row: dict[str, Any]) -> None: ...

    def conflicts(self, limit: int | None = None, under: str | None = None,
                  open_only: bool = False) -> list[dict[str, Any]]:
        """Conflicts, oldest first, with the card's name and number; values decoded;
        `open_only`: not resolved yet."""
        ...

    def conflict(self, conflict_id: int) -> dict[str, Any] | None:
        """One conflict by its id (every column, values decoded), or None."""
        ...

    def resolve_conflict(self, conflict_id: int, resolution: str, by: str, at: str) -> bool:
        """Mark an unresolved conflict resolved (resolution server|rep); False when it
        was resolved already (nothing changed)."""
        ...

    def visits_to_review(self, under: str | None = None,
                         limit: int | None = None) -> list[dict[str, Any]]:
        """Submitted visits, by start time (the oldest waits longest), each with
        rep_name, customer_name, card_no, phone, decision_maker and its review and
        call-back columns."""
        ...

    def callback_queue(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Visits picked for call-back and not called yet (callback pending, not void),
        by start time, with the same columns as `visits_to_review`."""
        ...

    def disputed_visits(self, under: str | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
        """Visits whose call-back was disputed, by the time of the call, with the same
        columns as `visits_to_review`."""
        ...

    def callback_counts(self, under: str | None = None,
                        rep_id: str | None = None) -> list[dict[str, Any]]:
        """Per author of visits picked for call-back (only `rep_id`'s, if given): rep_id,
        rep_name, pending, verified, disputed (ints), by rep name. Reps with none
        picked have no row."""
        ...

    def callback_throughput(self, by: str | None = None) -> list[dict[str, Any]]:
        """Calls recorded per caller and UTC day (by, day YYYY-MM-DD, calls), by day;
        only `by`'s when given."""
        ...


class Departures(Protocol):
    def insert_revocation(self, row: dict[str, Any]) -> int:
        """Record a departure; returns its id. UniqueViolation when the rep has one."""
        ...

    def revocation(self, rep_id: str) -> dict[str, Any] | None: ...

    def revocations(self) -> list[dict[str, Any]]:
        """Every departure, oldest first."""
        ...

    def revocation_by_id(self, revocation_id: int) -> dict[str, Any] | None: ...

    def due_revocations(self, now: str) -> list[int]:
        """Ids of departures not applied whose effective time is at or before `now`."""
        ...

    def mark_revocation_applied(self, revocation_id: int, at: str, reassigned: str) -> None: ...

    def wipe_order(self, device_id: str) -> dict[str, Any] | None: ...

    def insert_wipe_order(self, order_id: str, device_id: str, at: str) -> None:
        """UniqueViolation when the device has an order already."""
        ...

    def set_wipe_receipt(self, order_id: str, at: str, receipt: str) -> None: ...


class AuditLog(Protocol):
    def audit_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest entry, or None for an empty log."""
        ...

    def insert_audit(self, entry: dict[str, Any]) -> None:
        """Append an entry (seq, at, actor, action, subject, details, prev_hash, hash)."""
        ...

    def audit_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries (all for None), oldest first, details as text."""
        ...

    def audit_all(self) -> Iterator[dict[str, Any]]:
        """Every entry in sequence order, streamed (for verifying the chain)."""
        ...

    def count_audit(self) -> int: ...


class Staff(Protocol):
    """Staff accounts (admin, manager, verifier, hr) and their API tokens."""

    def insert_staff(self, row: dict[str, Any]) -> None:
        """A new account; UniqueViolation when the id or name exists."""
        ...

    def staff(self, ref: str) -> dict[str, Any] | None:
        """Every column of the account whose id or exact name is `ref` (disabled too)."""
        ...

    def staff_list(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every account by name, without its password hash: id, name, role, rep_id,
        created_at, disabled_at, locked_until, failed_logins, has_password (0/1) and
        tokens (how many unrevoked tokens it has)."""
        ...

    def count_active_staff(self, role: str) -> int:
        """How many accounts of `role` are not disabled."""
        ...

    def update_staff(self, row: dict[str, Any]) -> None:
        """Set the given columns of the account `row["id"]` (nothing when it is unknown)."""
        ...

    def add_failed_login(self, staff_id: str) -> int:
        """Count one more failed login of the account; returns the new count (an
        atomic increment: two workers failing at once count two)."""
        ...

    def insert_staff_token(self, token_hash: str, staff_id: str, name: str, at: str) -> None:
        """UniqueViolation when the hash exists."""
        ...

    def staff_token(self, token_hash: str) -> dict[str, Any] | None:
        """The unrevoked token row with this hash joined with its account's columns
        (token_hash, staff_id, last_used_at, name, role, rep_id, disabled_at; the
        token's own name as token_name)."""
        ...

    def staff_tokens_of(self, staff_id: str) -> list[dict[str, Any]]:
        """The account's tokens, revoked ones too, oldest first: name, created_at,
        last_used_at, revoked_at (never the hash)."""
        ...

    def revoke_staff_tokens(self, staff_id: str, name: str | None, at: str) -> int:
        """Revoke the account's unrevoked tokens called `name` (every one for None);
        returns how many."""
        ...

    def touch_staff_token(self, token_hash: str, at: str, unless_after: str) -> None:
        """Record `at` as the token's last use, unless its last use is already at or
        after `unless_after` (so a busy token is written at most once a period)."""
        ...

    def reps_under(self, rep_id: str) -> list[str]:
        """Ids of every rep below `rep_id` in the manager tree, transitively (not
        `rep_id` itself); a cycle in the tree does not loop."""
        ...


@dataclass(frozen=True)
class CardFilter:
    """Which cards a staff listing shows. `owners`: only cards of these reps (None: any
    rep's); `pool`: also the pool's cards (with `owners=[]`: only the pool's)."""

    owners: tuple[str, ...] | None = None
    pool: bool = True
    grade: str | None = None
    locked: bool | None = None
    served_before: str | None = None  # no visit at or after this time (never: matches)


class Pool(Protocol):
    """The pool (公海): return warnings, claims, locks, duplicate keys."""

    def pool_candidates(self, grade: str, cutoff: str, after: str = "",
                        limit: int = 500) -> list[dict[str, Any]]:
        """Owned, unlocked cards of `grade` owned since and last served (if ever) at or
        before `cutoff`, with card number above `after`, by card number, at most `limit`."""
        ...

    def insert_pool_warning(self, customer_id: str, rep_id: str, due_at: str,
                            warned_at: str) -> bool:
        """Record that `rep_id` was warned `customer_id` returns at `due_at`; False (and
        nothing written) when that warning exists. Idempotent."""
        ...

    def pool_warnings(self, rep_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Warnings (customer_id, rep_id, due_at, warned_at) whose customer that rep still
        owns unlocked, with the card's card_no, name, grade, owned_since, last_served_at
        and the rep's name as rep_name; of `rep_ids` only when given; by due_at."""
        ...

    def pool_entries(self, search: str, limit: int, offset: int) -> list[dict[str, Any]]:
        """Pool cards (id, card_no, name, industry, area, grade, in_pool_since: when the
        card last went to the pool) whose name, name key, industry or area contains
        `search` (any case; '' matches all) or whose card number is `search`, by card
        number. Nothing else of the card."""
        ...

    def count_pool(self, search: str) -> int:
        """How many cards `pool_entries` finds for `search`, unpaged."""
        ...

    def claims_since(self, rep_id: str, since: str) -> list[str]:
        """Times of the rep's claims from the pool (ownership rows with source
        'claimed') at or after `since`, oldest first."""
        ...

    def customers_by_keys(self, phone_key: str, name_key: str) -> list[dict[str, Any]]:
        """Cards whose phone_key is `phone_key` or whose name_key is `name_key`, by card
        number; an empty key matches nothing."""
        ...

    def customers_missing_keys(self, after: str, limit: int) -> list[dict[str, Any]]:
        """Cards (id, name, phone) with no name key yet and an id above `after`, by id."""
        ...

    def set_customer_keys(self, customer_id: str, name_key: str, phone_key: str) -> None:
        """Store the card's duplicate keys (no new revision: derived data)."""
        ...

    def find_customers(self, where: CardFilter, limit: int | None = None,
                       offset: int = 0) -> list[dict[str, Any]]:
        """Cards matching `where`, by card number, with the owner's name as owner_name."""
        ...

    def count_found_customers(self, where: CardFilter) -> int:
        """How many cards match `where`."""
        ...


class Plans(Protocol):
    """Daily visit plans (每日拜访计划) and their revisions. A plan's `items` is a list
    of dicts (customer_id, purpose, time) in and out; the store keeps it as JSON."""

    def insert_plan(self, row: dict[str, Any]) -> None:
        """A new plan; UniqueViolation when its id, or its rep and day, exist."""
        ...

    def update_plan(self, row: dict[str, Any]) -> None:
        """Overwrite the plan `row["id"]` with `row`."""
        ...

    def plan(self, plan_id: str) -> dict[str, Any] | None: ...

    def plans_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """The named plans that exist, in no particular order."""
        ...

    def plans(self, rep_ids: list[str] | None, status: str | None = None, day: str | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        """Plans newest day first (then by id), of the named reps (None: every rep's),
        filtered by status and day when given; at most `limit`."""
        ...

    def insert_plan_revision(self, row: dict[str, Any], author: str, at: str) -> None:
        """Append the snapshot `row` as revision `row["rev"]` of plan `row["id"]`;
        UniqueViolation when that revision exists."""
        ...

    def plan_revisions(self, plan_id: str) -> list[dict[str, Any]]:
        """The plan's revisions (plan_id, rev, snapshot as a dict, author, at), oldest first."""
        ...


class Reports(Protocol):
    """Read-only queries behind the daily and weekly reports. Times are the archive's
    UTC text; spans are [start, end)."""

    def visits_between(self, rep_ids: list[str], start: str, end: str) -> list[dict[str, Any]]:
        """The reps' visits that started in the span, void ones left out, each with its
        customer's `customer_name` and `card_no`; by start time, then id. Costs in
        proportion to those reps' visits in the span (index visits(rep_id, started_at))."""
        ...

    def visits_to_customers(self, customer_ids: list[str], start: str,
                            end: str) -> list[dict[str, Any]]:
        """Visits by anyone to the named customers that started in the span, void ones
        left out; by start time, then id."""
        ...

    def ownership_gains(self, rep_ids: list[str], sources: list[str], start: str,
                        end: str) -> list[dict[str, Any]]:
        """Ownership changes in the span that gave a customer to one of the reps with one
        of the `sources` (e.g. developed, claimed), each with the card's `card_no` and
        `name`; oldest first."""
        ...

    def nearing_pool_return(self, rep_ids: list[str], cutoffs: dict[str, str],
                            other: str) -> list[dict[str, Any]]:
        """The reps' unlocked cards whose pool clock (the later of owned_since and
        last_served_at; cards with neither left out) started at or before the cutoff
        of their grade: `cutoffs` by lower-cased grade, `other` for any other grade.
        Each card's id, card_no, name, grade, owner_rep_id, owned_since, last_served_at;
        by owner, then card number. Costs in proportion to the reps' cards (index
        customers(owner_rep_id)), not to the archive's."""
        ...


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries a page shows: exact actor and subject, an action prefix
    (`staff.` for every staff.* entry), and a [since, until) time window."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: str | None = None
    until: str | None = None


class Oversight(Protocol):
    """What the office's oversight pages read: the audit log filtered, the reach of a
    pool rule, the HR system's tokens."""

    def audit_page(self, where: AuditFilter, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Matching audit entries, newest first, details as text."""
        ...

    def count_audit_page(self, where: AuditFilter) -> int: ...

    def count_pool_candidates(self, cutoffs: list[tuple[str, str]]) -> list[int]:
        """For each (grade, cutoff): how many owned, unlocked cards of that grade had their
        pool clock start at or before the cutoff (as `pool_candidates` lists them)."""
        ...

    def hr_tokens(self) -> list[dict[str, Any]]:
        """Every HR token (name, created_at, revoked_at), never its hash."""
        ...

    def revoke_hr_tokens(self, name: str, at: str) -> int:
        """Revoke the live HR tokens called `name`; how many."""
        ...


class Console(Protocol):
    """The staff console: sign-in sessions (only a cookie's SHA-256 is kept) and the
    keyset-paged, indexed lists and counts its pages show."""

    def insert_console_session(self, row: dict[str, Any]) -> None:
        """A new session (token_digest, id, staff_id, csrf_key, created_at, expires_at,
        last_seen_at); UniqueViolation when the digest or id exists."""
        ...

    def console_session(self, token_digest: str) -> dict[str, Any] | None:
        """The unrevoked session with this digest joined with its account (name, role,
        rep_id, disabled_at), or None."""
        ...

    def touch_console_session(self, token_digest: str, at: str, unless_after: str) -> None:
        """Record `at` as the session's last use unless it was used at or after
        `unless_after` (a busy session is written once a period)."""
        ...

    def revoke_console_session(self, token_digest: str, at: str) -> int:
        """Revoke the session (sign-out); 1, or 0 when it was unknown or revoked."""
        ...

    def customers_page(self, where: CardFilter, after: str, limit: int) -> list[dict[str, Any]]:
        """Cards matching `where` with card number above `after`, by card number, at most
        `limit`: id, card_no, name, grade, owner_rep_id, owner_name, owned_since, locked,
        last_served_at, phone, decision_maker."""
        ...

    def review_page(self, rep_ids: list[str] | None, after: tuple[str, str],
                    limit: int) -> list[dict[str, Any]]:
        """Submitted visits of the reps (None: anyone's) after (started_at, id) `after`,
        oldest first, as the review queue shows them; at most `limit`."""
        ...

    def count_visits_by_status(self, rep_ids: list[str] | None, status: str) -> int:
        """How many of the reps' (None: anyone's) visits have `status`."""
        ...

    def count_callbacks(self, rep_ids: list[str] | None, callback: str) -> int:
        """How many of the reps' (None: anyone's) visits, void ones left out, have the
        call-back state `callback` (pending, verified, disputed)."""
        ...

    def visits_per_day(self, rep_ids: list[str] | None, start: str,
                       end: str) -> list[dict[str, Any]]:
        """Visits (void left out) started in [start, end) counted per rep and UTC day:
        rep_id, day (YYYY-MM-DD), visits; by rep, then day."""
        ...

    def plan_counts(self, rep_ids: list[str] | None, first_day: str,
                    last_day: str) -> dict[str, int]:
        """How many of the reps' plans for days first_day..last_day are in each status."""
        ...

    def callbacks_by(self, staff_ref: str, since: str) -> dict[str, int]:
        """How many call-backs `staff_ref` (as the visit records it: staff:NAME) recorded
        at or after `since`, per result (results with none left out)."""
        ...

    def nearing_pool(self, rep_ids: list[str] | None) -> list[dict[str, Any]]:
        """What `pool_warnings` answers (warned cards the rep still owns unlocked: the
        warning's columns, the card's card_no, name, grade, owned_since,
        last_served_at, the rep's name as rep_name; by due_at), of the reps (None:
        everyone's), at a cost in proportion to the warnings, not to the team's cards."""
        ...

    def disputes_page(self, rep_ids: list[str] | None, limit: int) -> list[dict[str, Any]]:
        """Disputed visits of the reps (None: anyone's), most recently called first, as
        the review queue shows them; at most `limit`."""
class Attachments(Protocol):
    """Attachments' rows (the bytes are in the blob folder, server/blobs.py) and the
    device signature of each visit revision (schema/evidence.py)."""

    def attachment(self, sha256: str) -> dict[str, Any] | None:
        """The stored attachment's row (sha256, size, content_type, stored_at,
        first_device_id), or None if the archive does not have it (complete)."""
        ...

    def insert_attachment(self, row: dict[str, Any]) -> None:
        """Record a complete, verified blob; a second insert of one sha256 does nothing."""
        ...

    def attachments_present(self, shas: list[str]) -> set[str]:
        """Which of `shas` the archive has."""
        ...

    def link_visit_attachments(self, visit_id: str, rev: int, refs: list[dict[str, Any]]) -> None:
        """The visit names these attachments (sha256, name) from revision `rev` on;
        one already named keeps its first name and revision."""
        ...

    def attachments_of_visits(self, visit_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """visit id -> its attachments (sha256, name, size, content_type), by name."""
        ...

    def rep_may_read_attachment(self, sha256: str, rep_id: str) -> bool:
        """Whether a visit naming it is the rep's own or on a card the rep owns now."""
        ...

    def insert_visit_evidence(self, row: dict[str, Any]) -> None:
        """One revision's evidence: visit_id, rev, device_id, device_time, signature,
        attachments (list of sha256), received_at, kind and content (the op kind and the
        signed content as JSON); stored unchecked (verified NULL)."""
        ...

    def unchecked_evidence(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` evidence rows not checked yet, oldest first, each with its
        device's `sign_public_key`; attachments as a list."""
        ...

    def set_evidence_verdicts(self, verdicts: list[tuple[int, str, int]]) -> None:
        """Store (verified 0/1, visit_id, rev) verdicts."""
        ...

    def count_unchecked_evidence(self) -> int:
        """Evidence rows not checked yet (cost: an index count of them)."""
        ...

    def visit_evidence(self, visit_id: str) -> list[dict[str, Any]]:
        """Every revision's evidence of the visit, oldest first."""
        ...

    def attachment_totals(self) -> dict[str, int]:
        """{"attachments": count, "bytes": total size} of the stored blobs."""
        ...


class Store(Meta, Directory, Cards, Visits, Feed, Ops, Received, Review, Departures, AuditLog, Staff, Pool,
            Plans, Reports, Oversight, Console, Attachments, Protocol):
    """Everything, for one transaction."""

    def counts(self) -> dict[str, int]:
        """Rows in reps, devices, customers, visits, conflicts and quarantine."""
        ...


__all__ = ["Attachments", "AuditFilter", "AuditLog", "CardFilter", "Cards", "Console", "Departures",
           "Device", "Directory", "Feed", "FeedRow", "Meta", "Ops", "Oversight", "Plans", "Pool",
           "PullPage", "Reports", "Review", "Staff", "Store", "Visits"]
