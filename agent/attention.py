"""What needs the rep's attention: visits the manager returned, changes the server
refused or holds for review, returned plans, and customers about to go back to the
pool (公海).

The pool warnings are worked out on the laptop, from the rules the last pull brought
(PullResponse.pool_rules), because a rep can be offline for days: a customer's
deadline is its last sign of service (the card's last_served_at, the day the rep got
it, or a visit logged here and not yet synced) plus the return days of its grade.

A mixin of agent/store.py's Store (kept light: `fieldvault status` imports it).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from schema.clock import Clock, iso, parse_iso

if TYPE_CHECKING:
    import sqlcipher3

POOL_RULES_STATE = "pool_rules"
DAY = timedelta(days=1)


def card_label(name: str | None, card_no: str | None, customer_id: str) -> str:
    """How a card is named to the rep: its name and number (a card made here has no
    number until the archive gives it one)."""
    if name is None:
        return f"customer {customer_id[:12]} (no longer on this laptop)"
    return f"{name} ({card_no or 'new card'})"


def pool_message(label: str, due: datetime, now: datetime) -> str:
    left = math.ceil((due - now) / DAY)
    if left > 0:
        return f"{label} returns to the pool in {left} day{'s' if left != 1 else ''} unless visited"
    return (f"{label} is past its pool deadline ({due.date().isoformat()}): it returns to "
            "the pool unless a visit from before then reaches the server")


class Attention:
    """Needs-attention lists and pool deadlines over the vault (mixed into Store)."""

    conn: sqlcipher3.Connection
    rep_id: str
    clock: Clock

    if TYPE_CHECKING:
        def get_state(self, key: str, default: str | None = None) -> str | None: ...

    # --- the pool (公海) clock ------------------------------------------------------

    def pool_rules(self) -> dict[str, Any] | None:
        """The return rules the last pull brought, or None before any server sent them."""
        raw = self.get_state(POOL_RULES_STATE)
        return orjson.loads(raw) if raw else None

    def pool_deadlines(self, warned_only: bool = True,
                       customer_id: str | None = None) -> list[dict[str, Any]]:
        """The rep's unlocked cards with their pool deadline, soonest first; with
        `warned_only`, only those inside the warning window (due - warn_days <= now)."""
        rules = self.pool_rules()
        if rules is None:
            return []
        now = self.clock.now()
        warn = timedelta(days=int(rules.get("warn_days", 0)))
        days = {g: int(d) for g, d in rules["return_days"].items()}
        fallback = max(days.values(), default=90)
        # A cheap first cut on the card's own columns (a visit only moves a deadline
        # later), one day wide for any difference in how a time is written; the exact
        # test follows on the few rows left.
        cutoff = {g: iso(now + warn + DAY - timedelta(days=days.get(g, fallback))) if warned_only
                  else "9999" for g in ("A", "B", "C")}
        sql = ("SELECT id, card_no, name, grade, last_served_at, owned_since, "
               "(SELECT max(started_at) FROM visits WHERE customer_id = c.id "
               "AND status != 'void') AS last_visit FROM customers c "
               "WHERE owner_rep_id = ? AND locked = 0 AND max(coalesce(last_served_at, ''), "
               "coalesce(owned_since, '')) <= CASE grade WHEN 'A' THEN ? WHEN 'B' THEN ? ELSE ? END")
        params: list[Any] = [self.rep_id, cutoff["A"], cutoff["B"], cutoff["C"]]
        if customer_id is not None:
            sql += " AND id = ?"
            params.append(customer_id)
        found = []
        for cid, card_no, name, grade, served, since, visited in self.conn.execute(sql, params):
            times = [parse_iso(t) for t in (served, since, visited) if t]
            if not times:
                continue
            base = max(times)
            due = base + timedelta(days=days.get(grade, fallback))
            if warned_only and now < due - warn:
                continue
            label = card_label(name, card_no, cid)
            found.append({"customer_id": cid, "card_no": card_no, "name": name, "grade": grade,
                          "last_served": iso(base), "due_at": iso(due),
                          "days_left": math.ceil((due - now) / DAY),
                          "message": pool_message(label, due, now)})
        found.sort(key=lambda w: w["due_at"])
        return found

    def pool_status(self, customer: dict[str, Any]) -> dict[str, Any]:
        """What `customer show` says about a card and the pool."""
        if customer.get("owner_rep_id") != self.rep_id:
            return {}
        if customer.get("locked"):
            return {"pool": "locked: a key account, never returned to the pool"}
        found = self.pool_deadlines(False, customer["id"])
        if not found:
            return {}
        deadline = found[0]
        out = {"returns_to_pool_at": deadline["due_at"]}
        rules = self.pool_rules() or {}
        if deadline["days_left"] <= int(rules.get("warn_days", 0)):
            out["pool_warning"] = deadline["message"]
        return out

    # --- the manager's answers, and the server's refusals ---------------------------

    def returned_visits(self) -> list[dict[str, Any]]:
        """The rep's visits the manager returned, with the comment: edit to resubmit."""
        rows = self.conn.execute(
            "SELECT v.id, v.customer_id, v.started_at, v.purpose, v.summary, v.review_comment, "
            "v.reviewed_by, v.reviewed_at, c.name, c.card_no FROM visits v "
            "LEFT JOIN customers c ON c.id = v.customer_id "
            "WHERE v.rep_id = ? AND v.status = 'returned' ORDER BY v.reviewed_at, v.id",
            (self.rep_id,),
        ).fetchall()
        return [{"kind": "visit", "id": r[0], "state": "returned",
                 "customer": card_label(r[8], r[9], r[1]), "at": r[2], "purpose": r[3],
                 "summary": r[4], "reason": r[5], "by": r[6], "reviewed_at": r[7]}
                for r in rows]

    def refused_ops(self) -> list[dict[str, Any]]:
        """Operations the server rejected or holds for review, with its reason and the
        card they concern (e.g. a new card held back as a duplicate of another's)."""
        rows = self.conn.execute(
            "SELECT o.seq, o.op_id, o.kind, o.entity_id, o.state, o.reason, o.data, o.at, "
            "c.id, c.name, c.card_no FROM outbox o "
            "LEFT JOIN visits v ON o.kind LIKE 'visit.%' AND v.id = o.entity_id "
            "LEFT JOIN customers c ON c.id = CASE WHEN o.kind LIKE 'customer.%' "
            "THEN o.entity_id ELSE coalesce(v.customer_id, json_extract(o.data, '$.customer_id')) END "
            "WHERE o.state != 'pending' ORDER BY o.seq"
        ).fetchall()
        out = []
        for seq, op_id, kind, entity_id, state, reason, data, at, cid, name, card_no in rows:
            payload = orjson.loads(data)
            if kind == "customer.create" and name is None:
                customer = f"{payload.get('name', '')} (new card)"
            elif kind == "plan.submit":
                customer = f"plan for {entity_id}"
            else:
                customer = card_label(name, card_no, cid or payload.get("customer_id") or entity_id)
            out.append({"kind": kind, "id": entity_id, "state": state, "customer": customer,
                        "at": at, "reason": reason or "", "op_id": op_id, "seq": seq})
        return out

    def returned_plans(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT day, comment, reviewed_by, reviewed_at FROM plans WHERE status = 'returned' "
            "ORDER BY day").fetchall()
        return [{"kind": "plan", "id": r[0], "state": "returned", "customer": f"plan for {r[0]}",
                 "reason": r[1], "by": r[2], "reviewed_at": r[3]} for r in rows]

    def attention(self) -> dict[str, list[dict[str, Any]]]:
        """Everything that waits for the rep, by group, most urgent first in each."""
        return {"returned_visits": self.returned_visits(), "refused": self.refused_ops(),
                "returned_plans": self.returned_plans(), "pool_warnings": self.pool_deadlines()}
