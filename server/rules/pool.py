"""The pool (公海): customers nobody serves go back to it, and reps claim from it.

The clock: a customer's anchor is the later of its last visit (the visit's own
start time, so offline work counts) and the day its owner got it; it is due back
`return_days(grade)` days later. The owner is warned `warn_days` before, and the
return waits `grace_days` more for visits made offline and not yet synced. A visit
that arrives after the return but was made before it undoes the return
(`after_visit_accepted`). Locked customers (key accounts) never return.

Claims are capped: per rep per 24 hours, per rep by tier, and the previous owner
waits a cooldown. Every return, claim, restore and lock is a row of the ownership
history with its reason. Free functions over the store of the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schema.clock import iso, parse_iso
from schema.enums import Grade, OwnershipSource

from ..archive.errors import ArchiveError, Conflict, Forbidden, NotFound
from ..archive.store import Store
from . import access, audit, cards, policies
from .access import StaffMember
from .policies import PoolPolicy

# The author of automatic returns (ownership `by`, audit actor): only a return made
# by the rule is undone by an older visit, never an office's deliberate one.
RETURN_BY = "system:pool"
# Ownership rows that record a lock, not a change of owner (from = to = the owner).
MARKS = frozenset({"locked", "unlocked"})
# Cards handled per transaction by the jobs, so a long run never holds the serial
# write for long.
BATCH = 200
CLAIM_WINDOW = timedelta(hours=24)
# How often `serve` runs the pool's jobs (departures: every round of its job loop).
JOBS_EVERY_S = 300.0


def changes_of_owner(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ownership rows that moved the customer (lock marks left out)."""
    return [r for r in rows if r["source"] not in MARKS]


def anchor(card: dict[str, Any]) -> str:
    """When the pool clock started: the last visit or the day the owner got the card."""
    return max(card["owned_since"] or "", card["last_served_at"] or "")


def due_at(policy: PoolPolicy, card: dict[str, Any]) -> datetime:
    """When the card is due back in the pool (the return itself waits the grace)."""
    return parse_iso(anchor(card)) + timedelta(days=policy.return_days(card["grade"]))


def return_reason(policy: PoolPolicy, card: dict[str, Any]) -> str:
    days = policy.return_days(card["grade"])
    last = (card["last_served_at"] or "")[:10] or f"never; owned since {card['owned_since'][:10]}"
    return f"no visit for {days} days (last: {last})"


# --- the jobs ---------------------------------------------------------------------------

def warn_due(store: Store, now: datetime) -> int:
    """Warn the owner of every card due back within `warn_days`; returns how many new
    warnings (a warning is recorded once per card, owner and due date)."""
    policy = policies.read(store, PoolPolicy)
    warned = 0
    for grade in Grade:
        cutoff = iso(now - timedelta(days=policy.return_days(grade) - policy.warn_days))
        after = ""
        for _ in range(10**9):
            rows = store.pool_candidates(grade.value, cutoff, after, BATCH)
            for card in rows:
                warned += store.insert_pool_warning(card["id"], card["owner_rep_id"],
                                                    iso(due_at(policy, card)), iso(now))
            if len(rows) < BATCH:
                break
            after = rows[-1]["card_no"]
    return warned


def return_due(store: Store, now: datetime, limit: int = BATCH) -> list[dict[str, Any]]:
    """Return to the pool at most `limit` cards whose due time and grace have passed
    (the caller repeats, one transaction per batch, until fewer come back)."""
    policy = policies.read(store, PoolPolicy)
    done: list[dict[str, Any]] = []
    for grade in Grade:
        cutoff = iso(now - timedelta(days=policy.return_days(grade) + policy.grace_days))
        for card in store.pool_candidates(grade.value, cutoff, "", limit - len(done)):
            cards.assign(store, iso(now), card["id"], None, return_reason(policy, card), RETURN_BY)
            done.append(card)
        if len(done) >= limit:
            break
    return done


def current_warnings(store: Store, rep_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Warnings still true now: the owner has not visited since and the policy has not
    changed the due date. Each with `returns_at` (due date plus the grace)."""
    policy = policies.read(store, PoolPolicy)
    out = []
    for row in store.pool_warnings(rep_ids):
        due = due_at(policy, row)
        if iso(due) == row["due_at"]:
            out.append({**row, "returns_at": iso(due + timedelta(days=policy.grace_days))})
    return out


def after_visit_accepted(store: Store, now: str, customer: dict[str, Any],
                         visit: dict[str, Any]) -> dict[str, Any] | None:
    """Undo a pool return that a late-synced visit shows was wrong: when the customer
    is in the pool, its last move was the rule's return from this visit's author, and
    the visit started before that return, the author gets the customer back (not if
    someone claimed it meanwhile, nor if the author has left). Returns the card when
    it was given back, else None. Call it after storing an accepted visit."""
    card = store.customer(customer["id"])
    if card is None or card["owner_rep_id"] is not None:
        return None
    moves = changes_of_owner(store.ownership(card["id"]))
    author = visit["rep_id"]
    if not moves:
        return None
    last = moves[-1]
    if (last["by"] != RETURN_BY or last["from_rep_id"] != author
            or visit["started_at"] >= last["at"]):
        return None
    rep = store.rep(author)
    if rep is None or not rep["active"]:
        return None
    earlier = [r for r in moves[:-1] if r["to_rep_id"] == author]
    try:
        source = OwnershipSource(earlier[-1]["source"]) if earlier else OwnershipSource.assigned
    except ValueError:
        source = OwnershipSource.assigned
    reason = f"restored: visit of {visit['started_at'][:10]} made before the return"
    return cards.assign(store, now, card["id"], author, reason, RETURN_BY, source)


# --- locks ------------------------------------------------------------------------------

def set_lock(store: Store, now: str, who: StaffMember, ref: str, locked: bool,
             reason: str) -> dict[str, Any]:
    """Lock (a key account: exempt from returns) or unlock a customer: a new card
    revision (the owner's laptop learns it) and a mark in the ownership history
    (from = to = the owner). Locking what is already locked changes nothing."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise ArchiveError("invalid_reason", "give a reason of 1-500 characters")
    card = store.customer_by_ref(ref)
    if card is None:
        raise NotFound("unknown_customer", f"no customer {ref!r}")
    owner = card["owner_rep_id"]
    access.authorize(store, who, "customer.lock", owner)
    if owner is None:
        raise Conflict("in_pool", f"{card['card_no']} is in the pool: assign it to a rep "
                       "before locking it")
    if bool(card["locked"]) == locked:
        return card
    mark = "locked" if locked else "unlocked"
    card.update(locked=1 if locked else 0, rev=card["rev"] + 1, updated_at=now)
    cards.store_customer(store, card, who.actor, None, None)
    store.insert_ownership(card["id"], owner, owner, mark, reason, who.actor, now)
    audit.append(store, now, who.actor, f"customer.{mark[:-2]}", card["id"],
                 {"owner": owner, "reason": reason})
    return card


# --- claims -----------------------------------------------------------------------------

def claims_left(store: Store, now: datetime, rep_id: str, policy: PoolPolicy) -> int:
    return max(0, policy.claims_per_day - len(store.claims_since(rep_id, iso(now - CLAIM_WINDOW))))


def _refuse_caps(store: Store, now: datetime, rep: dict[str, Any], card: dict[str, Any],
                 policy: PoolPolicy) -> None:
    """Forbidden naming the cap, the numbers and when it frees up."""
    claims = store.claims_since(rep["id"], iso(now - CLAIM_WINDOW))
    per_day = policy.claims_per_day
    if per_day == 0:
        raise Forbidden("daily_claim_cap", "daily claim cap: claims from the pool are "
                        "switched off (claims_per_day is 0); ask your manager")
    if len(claims) >= per_day:
        frees = parse_iso(claims[len(claims) - per_day]) + CLAIM_WINDOW
        raise Forbidden("daily_claim_cap", f"daily claim cap reached: {len(claims)} claims "
                        f"in the last 24 hours (limit {per_day}); the next claim frees up "
                        f"at {iso(frees)}")
    owned, cap = store.count_customers(rep["id"]), policy.cap(rep["tier"])
    if owned >= cap:
        raise Forbidden("owned_cap", f"owned cap reached: you own {owned} customers (limit "
                        f"{cap} for a {rep['tier']} rep); it frees up when one of your "
                        "customers leaves you")
    moves = changes_of_owner(store.ownership(card["id"]))
    if moves and moves[-1]["from_rep_id"] == rep["id"]:
        left = parse_iso(moves[-1]["at"])
        frees = left + timedelta(days=policy.reclaim_cooldown_days)
        if now < frees:
            raise Forbidden("reclaim_cooldown", f"reclaim cooldown: {card['card_no']} went "
                            f"from you to the pool on {iso(left)[:10]}; its previous owner may "
                            f"claim it again {policy.reclaim_cooldown_days} days later, from "
                            f"{iso(frees)}")


def claim(store: Store, now: datetime, rep_id: str, ref: str) -> dict[str, Any]:
    """The rep takes a customer from the pool: the card and its whole history reach
    their laptop at the next pull. NotFound `unknown_customer`; Conflict `not_in_pool`;
    Forbidden `daily_claim_cap`, `owned_cap`, `reclaim_cooldown`."""
    rep = store.rep(rep_id)
    assert rep is not None, rep_id
    card = store.customer_by_ref(ref)
    if card is None:
        raise NotFound("unknown_customer", f"no customer {ref!r} in the pool")
    if card["owner_rep_id"] is not None:
        whose = "you already own it" if card["owner_rep_id"] == rep_id else "someone owns it"
        raise Conflict("not_in_pool", f"{card['card_no']} is not in the pool: {whose}")
    policy = policies.read(store, PoolPolicy)
    _refuse_caps(store, now, rep, card, policy)
    row = cards.assign(store, iso(now), card["id"], rep_id, "claimed from the pool", rep_id,
                       OwnershipSource.claimed)
    return {"customer_id": row["id"], "card_no": row["card_no"], "name": row["name"],
            "claims_left_today": claims_left(store, now, rep_id, policy)}


def page(store: Store, now: datetime, rep_id: str, search: str, limit: int,
         offset: int) -> dict[str, Any]:
    """What a rep sees of the pool (PoolPage): only what they need to choose."""
    rep = store.rep(rep_id)
    assert rep is not None, rep_id
    policy = policies.read(store, PoolPolicy)
    return {"customers": store.pool_entries(search, limit, offset),
            "total": store.count_pool(search),
            "claims_left_today": claims_left(store, now, rep_id, policy),
            "owned": store.count_customers(rep_id), "owned_cap": policy.cap(rep["tier"])}
