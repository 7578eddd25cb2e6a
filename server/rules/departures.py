"""Departure of a rep: refuse their devices, reassign their customers, keep their visits.

Runs inside the caller's transaction, so a departure is applied whole or not
at all. Visits are never touched: authorship stays with the departed rep.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from schema.clock import iso, parse_iso

from ..archive.errors import ArchiveError, NotFound
from ..archive.store import Store
from . import audit, cards, distribution, wipes


def tally(targets: dict[str, str | None]) -> dict[str, int]:
    """How many customers went to each new owner ("pool" for none)."""
    return dict(Counter(owner or "pool" for owner in targets.values()))


def plan(store: Store, rep: dict[str, Any], mode: str) -> dict[str, str | None]:
    """customer id -> new owner (None: the pool) for every customer the rep owns."""
    customers = list(store.customers(rep["id"]))
    if mode == "pool":
        return {cust["id"]: None for cust in customers}
    if mode == "manager":
        if not rep["manager_id"]:
            raise ArchiveError("no_manager", f"{rep['name']} has no manager: name a successor")
        return {cust["id"]: rep["manager_id"] for cust in customers}
    if mode == "team":
        if not rep["manager_id"]:
            raise ArchiveError("no_team", f"{rep['name']} has no manager, hence no team")
        team = store.team(rep["manager_id"], rep["id"])
        if not team:
            raise ArchiveError("empty_team", f"{rep['name']}'s team has no other active rep")
        return dict(distribution.deal(customers, team))
    successor = store.rep(mode)
    if successor is None or not successor["active"]:
        raise NotFound("unknown_successor", f"no active rep {mode!r} to take over")
    if successor["id"] == rep["id"]:
        raise ArchiveError("invalid_successor", "a rep cannot succeed themselves")
    return {cust["id"]: successor["id"] for cust in customers}


def apply(store: Store, now: str, revocation: dict[str, Any]) -> dict[str, Any]:
    """Make a due departure effective: rep inactive, devices refused, customers reassigned."""
    rep = store.rep(revocation["rep_id"])
    assert rep is not None
    fallback = None
    try:
        targets = plan(store, rep, revocation["reassign_to"])
    except ArchiveError as exc:
        # Possible when scheduled, impossible now (e.g. the successor left first): the
        # departure must not wait on it, so the customers go to the pool to be dealt.
        targets, fallback = plan(store, rep, "pool"), exc.message
    store.set_rep_active(rep["id"], False)
    # The lease secrets go too: nothing the archive holds can unwrap these vaults any
    # more (a revoked device's unsynced work comes home sealed, needing no key).
    devices = store.revoke_devices(rep["id"], now)
    reason = f"departure of {rep['name']}: {revocation['reason']}"
    for customer_id, owner in targets.items():
        cards.assign(store, now, customer_id, owner, reason, revocation["requested_by"])
    counts = tally(targets)
    store.mark_revocation_applied(revocation["id"], now, orjson.dumps(targets).decode())
    audit.append(store, now, revocation["requested_by"], "rep.revoke", rep["id"], {
        "reason": revocation["reason"], "source": revocation["source"], "devices": devices,
        "reassign_to": revocation["reassign_to"], "reassigned": counts,
        **({"fallback_to_pool": fallback} if fallback else {}),
    })
    return {"rep_id": rep["id"], "devices_revoked": devices, "reassigned": counts}


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A departure as HR sees it."""
    return {"id": record["id"], "rep_id": record["rep_id"], "reason": record["reason"],
            "effective_at": record["effective_at"], "applied_at": record["applied_at"],
            "status": "applied" if record["applied_at"] else "scheduled",
            "reassign_to": record["reassign_to"],
            "reassigned": tally(orjson.loads(record["reassigned"])),
            "requested_by": record["requested_by"], "source": record["source"]}


def effective_time(effective_at: str | None, now: str) -> str:
    """When a departure takes effect: `effective_at` normalized, or now. ArchiveError
    `invalid_time` for text that is no ISO time."""
    try:
        return iso(parse_iso(effective_at)) if effective_at else now
    except ValueError:
        raise ArchiveError("invalid_time", f"{effective_at!r} is not an ISO time") from None


def request(store: Store, now: str, rep: dict[str, Any], reason: str, reassign_to: str,
            effective_at: str | None, by: str, source: str) -> dict[str, Any]:
    """Record a rep's departure, applied now or when `effective_at` comes. Idempotent:
    a rep who has one already gets it back (`already`). An impossible reassignment
    (no manager, unknown successor) is refused before anything is written."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise ArchiveError("invalid_reason", "give a reason of 1-500 characters")
    when = effective_time(effective_at, now)
    existing = store.revocation(rep["id"])
    if existing is not None:
        return {**summary(existing), "already": True}
    plan(store, rep, reassign_to)
    rid = store.insert_revocation({
        "rep_id": rep["id"], "reason": reason, "reassign_to": reassign_to,
        "effective_at": when, "requested_by": by, "source": source, "requested_at": now})
    audit.append(store, now, by, "rep.revoke_requested", rep["id"],
                 {"reason": reason, "effective_at": when, "reassign_to": reassign_to,
                  "source": source})
    record = store.revocation_by_id(rid)
    assert record is not None
    if when <= now:
        apply(store, now, record)
        record = store.revocation_by_id(rid)
        assert record is not None
    return {**summary(record), "already": False}


def report(store: Store, now: str, rep: dict[str, Any]) -> dict[str, Any]:
    """The departure report HR reads. NotFound `not_revoked` for a rep still here."""
    rec = store.revocation(rep["id"])
    if rec is None:
        raise NotFound("not_revoked", f"{rep['name']} has not been revoked")
    reassigned: dict[str, str | None] = orjson.loads(rec["reassigned"])
    names = store.rep_names()
    cards_now = {c["id"]: c for c in store.customers_by_ids(list(reassigned))}
    customers = [
        {"customer_id": cid, "name": cards_now[cid]["name"], "card_no": cards_now[cid]["card_no"],
         "to": to, "to_name": names.get(to or "", "pool"),
         "owner_now": cards_now[cid]["owner_rep_id"]}
        for cid, to in reassigned.items()
    ]
    return {
        "rep": {"id": rep["id"], "name": rep["name"], "active": bool(rep["active"])},
        "revocation": summary(rec), "devices": wipes.devices_as_seen(store, now, rep["id"], None),
        # A receipt is signed by the device key: it says the laptop's agent reports
        # having destroyed its copy. It is not proof that no copy is left (a disk
        # image, a backup, a modified agent): see docs/SECURITY.md.
        "wipe_receipt": wipes.WIPE_RECEIPT_MEANING, "customers": customers,
        "visits_preserved": store.count_visits(rep["id"], None),
        "quarantined": store.count_quarantined(rep["id"]),
    }
