"""Reading a rep's change feed: one page of changes, resolved to current state."""

from __future__ import annotations

from typing import Any

from ..archive.store import Meta, PullPage, Store
from . import attachments, policies


def pool_rules(store: Meta) -> dict[str, Any]:
    """What the laptop needs to warn its rep before a customer returns to the pool
    (schema.models.PoolRules), as the policy stands in this snapshot."""
    rules = policies.read(store, policies.PoolPolicy)
    return {"return_days": {g: rules.return_days(g) for g in ("A", "B", "C")},
            "warn_days": rules.warn_days, "grace_days": rules.grace_days}


def read_page(store: Store, rep_id: str, after_seq: int, limit: int,
              device_id: str | None = None, in_rows: bool = False) -> PullPage:
    """The rep's changes since `after_seq`, with the pool's rules. `device_id`: the
    pulling device, which is not sent the changes its own pushes made (their push
    results carried the records as the archive keeps them). `in_rows`: the cards and
    visits as tuples (PullPage.customer_rows, visit_rows), read in the wire's column
    order without a dict per record.

    The feed may name an entity several times and may name customers that have
    since left the rep; only what is in scope now is sent, and an evict is sent
    only when the customer is out of scope now (a later grant wins). A plan is
    the rep's own whoever owns its customers now: it is always sent, as it is now.
    """
    rows, feed_last = store.feed_page(rep_id, after_seq, limit, skip_origin=device_id)
    more = len(rows) == limit
    # A short page read to the end of the feed (this read's snapshot): the cursor moves
    # past the device's own rows after the last one sent, so they are not read again.
    last = rows[-1].seq if more else feed_last
    page = PullPage(last_seq=last, more=more, pool_rules=pool_rules(store))
    if not rows:
        return page
    plan_ids = list(dict.fromkeys(r.entity_id for r in rows if r.kind == "plan"))
    page.plans = [p for p in store.plans_by_ids(plan_ids) if p["rep_id"] == rep_id]
    rows = [r for r in rows if r.kind != "plan"]
    # The owner now of every card the page names; only the cards to send are read
    # whole (a page of visits names ~one card per visit: reading each long card only
    # for its owner was most of the server's time on a first sync).
    # Ids in order, here and below: each IN chunk then reads neighbouring B-tree pages
    # (~30% less read time than random chunks).
    owners = store.customer_owners(sorted({r.customer_id for r in rows}))
    owned = {cid for cid, owner in owners.items() if owner == rep_id}
    send_customers: dict[str, None] = {}
    granted: dict[str, None] = {}
    visit_ids: dict[str, None] = {}
    evicted: dict[str, None] = {}
    for r in rows:
        if r.customer_id not in owned:
            if r.kind == "evict":
                evicted[r.customer_id] = None
            continue
        if r.kind == "visit":
            visit_ids[r.entity_id] = None
        else:
            send_customers[r.customer_id] = None
            if r.kind == "grant":
                granted[r.customer_id] = None
    page.evicted = list(evicted)
    if in_rows:
        _read_rows(store, page, send_customers, granted, visit_ids)
        return page
    cards = {c["id"]: c for c in store.customers_by_ids(sorted(send_customers))}
    page.customers = [card_for_rep(cards[cid]) for cid in send_customers]
    visits = store.visits_of_customers(list(granted))
    have = {v["id"] for v in visits}
    visits += store.visits_by_ids(sorted(v for v in visit_ids if v not in have))
    page.visits = [visit_for_rep(v) for v in visits]
    attachments.decorate(store, page.visits)
    return page


def _read_rows(store: Store, page: PullPage, customers: dict[str, None],
               granted: dict[str, None], visit_ids: dict[str, None]) -> None:
    """The rows of a page: the same cards and visits as in records (card_for_rep and
    visit_for_rep's rules are in Store.customer_rows / visit_rows' SQL)."""
    page.customer_rows = store.customer_rows(sorted(customers))
    page.visit_rows = store.visit_rows(sorted(granted), of_customers=True)
    have = {v[0] for v in page.visit_rows}
    page.visit_rows += store.visit_rows(sorted(v for v in visit_ids if v not in have))
    if page.visit_rows:
        named = store.attachments_of_visits([v[0] for v in page.visit_rows])
        page.attachments = {vid: refs for vid, refs in named.items() if refs}


# What the archive keeps about a record but the rep's laptop is not told: duplicate
# keys (server bookkeeping), the device a visit came from, and why and by whom a visit
# was picked for call-back.
_CARD_ONLY_HERE = ("name_key", "phone_key")
_VISIT_ONLY_HERE = ("device_id", "callback_reason", "callback_by", "callback_at")


def card_for_rep(card: dict[str, Any]) -> dict[str, Any]:
    for key in _CARD_ONLY_HERE:
        card.pop(key, None)
    card["locked"] = bool(card["locked"])  # stored as 0/1; the wire model says true/false
    return card


def visit_for_rep(visit: dict[str, Any]) -> dict[str, Any]:
    for key in _VISIT_ONLY_HERE:
        visit.pop(key, None)
    visit["planned"] = bool(visit["planned"])
    # A call-back is unannounced: the rep learns a visit was called once the call is
    # made (verified or disputed), never that it is about to be, which would let them
    # prepare the customer.
    if visit.get("callback") == "pending":
        visit["callback"] = None
    return visit
