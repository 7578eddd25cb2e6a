"""Reading a rep's change feed: one page of changes, resolved to current state."""

from __future__ import annotations

from ..archive.store import PullPage, Store


def read_page(store: Store, rep_id: str, after_seq: int, limit: int) -> PullPage:
    """The rep's changes since `after_seq`.

    The feed may name an entity several times and may name customers that have
    since left the rep; only what is in scope now is sent, and an evict is sent
    only when the customer is out of scope now (a later grant wins).
    """
    rows = store.feed(rep_id, after_seq, limit)
    page = PullPage(last_seq=rows[-1].seq if rows else after_seq, more=len(rows) == limit)
    if not rows:
        return page
    owners = {c["id"]: c["owner_rep_id"]
              for c in store.customers_by_ids(list({r.customer_id for r in rows}))}
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
    page.customers = store.customers_by_ids(list(send_customers))
    visits = store.visits_of_customers(list(granted))
    have = {v["id"] for v in visits}
    visits += store.visits_by_ids([v for v in visit_ids if v not in have])
    for v in visits:
        v.pop("device_id", None)
    page.visits = visits
    return page
