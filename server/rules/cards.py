"""Customer cards: creating one, storing a new revision, moving ownership.

Free functions over the store of the caller's transaction: each change writes
the card, its revision and the change-feed row addressed to whoever must see it.
"""

from __future__ import annotations

import uuid
from typing import Any

from schema.enums import OwnershipSource
from schema.models import CustomerCreate
from schema.records import to_record

from ..archive.store import Store
from . import audit, duplicates


def insert_customer(
    store: Store, now: str, data: CustomerCreate, owner: str | None, by: str,
    source: OwnershipSource, customer_id: str | None = None, created_at: str | None = None,
    device_id: str | None = None, op_id: str | None = None, reason: str = "card created",
) -> dict[str, Any]:
    """A new card with its first revision, ownership record (`reason`) and feed row."""
    row = {
        "id": customer_id or uuid.uuid4().hex, "rev": 1,
        "card_no": f"FV{store.next_card_number():06d}",
        **to_record(data), "created_by": by, "created_at": created_at or now,
        "owner_rep_id": owner, "owned_since": now if owner else None,
        "ownership_source": source.value if owner else OwnershipSource.pool.value,
        "last_served_at": None, "updated_at": now,
    }
    row.update(duplicates.keys_of(row))
    store.insert_customer(row)
    store.insert_ownership(row["id"], None, owner, row["ownership_source"], reason, by, now)
    seq = store.append_feed(owner, "customer", row["id"], row["id"])
    store.insert_customer_revision(row, seq, by, device_id, op_id, now)
    return row


def store_customer(store: Store, row: dict[str, Any], author: str, device_id: str | None,
                   op_id: str | None, feed_kind: str = "customer") -> None:
    """Write the new state of a card, with its revision and feed row."""
    row.update(duplicates.keys_of(row))  # the name or phone may have changed
    store.update_customer(row)
    seq = store.append_feed(row["owner_rep_id"], feed_kind, row["id"], row["id"])
    store.insert_customer_revision(row, seq, author, device_id, op_id, row["updated_at"])


def assign(store: Store, now: str, customer_id: str, new_owner: str | None, reason: str,
           by: str, source: OwnershipSource | None = None) -> dict[str, Any]:
    """Give the card to `new_owner` (None: the pool) as `source` says (default: assigned,
    or pool). The old owner's devices are told to evict it; the new owner's next pull
    brings the card and its whole visit history, whoever wrote it. A card going to the
    pool loses its lock (a key account is someone's). Nothing happens when the owner
    does not change."""
    row = store.customer(customer_id)
    assert row is not None, customer_id
    old_owner = row["owner_rep_id"]
    if old_owner == new_owner:
        return row
    if new_owner is None:
        source = OwnershipSource.pool
        row["locked"] = 0
    source = source or OwnershipSource.assigned
    row.update(owner_rep_id=new_owner, owned_since=now if new_owner else None,
               ownership_source=source.value, rev=row["rev"] + 1, updated_at=now)
    store.insert_ownership(customer_id, old_owner, new_owner, source.value, reason, by, now)
    if old_owner:
        store.append_feed(old_owner, "evict", customer_id, customer_id)
    store_customer(store, row, by, None, None, feed_kind="grant")
    audit.append(store, now, by, "customer.assign", customer_id,
                 {"from": old_owner, "to": new_owner, "reason": reason, "source": source.value})
    return row
