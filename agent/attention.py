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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from schema.clock import Clock, iso

if TYPE_CHECKING:
    import sqlcipher3

POOL_RULES_STATE = "pool_rules"
DAY = timedelta(days=1)
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A stored time as whole milliseconds since 1970 (SQLite keeps dates in milliseconds).
_MS = "CAST(round((julianday({}) - 2440587.5) * 86400000.0) AS INTEGER)"


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def short_id(record_id: str) -> str:
    """A record's id as shown to the rep: its last digits. Ids made on a laptop start
    with their creation time, so the same day's records differ at their end; the
    commands that take an id take these digits too (`Store._get`)."""
    return record_id[-12:]


def card_label(name: str | None, card_no: str | None, customer_id: str) -> str:
    """How a card is named to the rep: its name and number (a card made here has no
    number until the archive gives it one)."""
    if name is None:
        return f"customer {short_id(customer_id)} (no longer on this laptop)"
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

    def pool_deadlines(self, warned_only: bool = True, customer_id: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
        """The rep's unlocked cards with their pool deadline, soonest first; with
        `warned_only`, only those inside the warning window (due - warn_days <= now)."""
        return self._deadlines(warned_only, customer_id, limit)[0]

    def _deadlines(self, warned_only: bool, customer_id: str | None,
                   limit: int | None) -> tuple[list[dict[str, Any]], int]:
        """(the first `limit` deadlines, how many there are in all). Worked out in SQL
        on whole milliseconds, so a vault of 50,000 cards answers `status` at once."""
        rules = self.pool_rules()
        if rules is None:
            return [], 0
        now = self.clock.now()
        days = {g: int(d) for g, d in rules["return_days"].items()}
        fallback = max(days.values(), default=90)
        grade_ms = "CASE grade " + " ".join(
            f"WHEN '{g}' THEN {days.get(g, fallback) * _DAY_MS}" for g in ("A", "B")
        ) + f" ELSE {days.get('C', fallback) * _DAY_MS} END"
        params: dict[str, Any] = {"rep": self.rep_id, "now": _ms(now),
                                  "warn": int(rules.get("warn_days", 0)) * _DAY_MS,
                                  "id": customer_id, "limit": -1 if limit is None else limit}
        cut = window = ""
        if warned_only:
            # A cheap first cut on the card's own columns as written (a visit only moves
            # a deadline later), a day wide for any difference in how a time is written.
            params.update({f"cut_{g}": iso(now + timedelta(
                days=int(rules.get("warn_days", 0)) + 1 - days.get(g, fallback)))
                for g in ("A", "B", "C")})
            params["cut"] = max(params[f"cut_{g}"] for g in ("A", "B", "C"))
            cut = ("AND (last_served_at IS NULL OR last_served_at <= :cut) "
                   "AND max(coalesce(last_served_at, ''), coalesce(owned_since, '')) <= "
                   "CASE grade WHEN 'A' THEN :cut_A WHEN 'B' THEN :cut_B ELSE :cut_C END")
            window = "AND due - :warn <= :now"
        one = "AND id = :id" if customer_id is not None else ""
        sql = f"""
            SELECT id, card_no, name, grade, base, due, count(*) OVER () FROM (
                SELECT *, base + {grade_ms} AS due FROM (
                    SELECT id, card_no, name, grade, max(
                        coalesce({_MS.format("last_served_at")}, 0),
                        coalesce({_MS.format("owned_since")}, 0),
                        coalesce((SELECT {_MS.format("started_at")} FROM visits
                                  WHERE customer_id = c.id AND status != 'void'
                                  ORDER BY started_at DESC LIMIT 1), 0)) AS base
                    FROM customers c
                    WHERE owner_rep_id = :rep AND locked = 0 {one} {cut}
                ) WHERE base > 0
            ) WHERE 1 {window} ORDER BY due, id LIMIT :limit"""  # noqa: S608 - no user text
        rows = self.conn.execute(sql, params).fetchall()
        found = []
        for cid, card_no, name, grade, base, due_ms, _ in rows:
            due = _EPOCH + timedelta(milliseconds=due_ms)
            found.append({"customer_id": cid, "card_no": card_no, "name": name, "grade": grade,
                          "last_served": iso(_EPOCH + timedelta(milliseconds=base)),
                          "due_at": iso(due), "days_left": math.ceil((due - now) / DAY),
                          "message": pool_message(card_label(name, card_no, cid), due, now)})
        return found, rows[0][-1] if rows else 0

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

    def conflicts(self) -> list[dict[str, Any]]:
        """Card edits of the rep's where the archive kept the office's value, not yet
        dismissed: per field the rep's value and the one the card holds now (the
        office's, once a pull brought it; the same sync's pull does)."""
        rows = self.conn.execute(
            "SELECT op_id, entity_id, kind, fields, mine, at FROM conflicts "
            "WHERE dismissed_at IS NULL ORDER BY at, op_id").fetchall()
        out = []
        for op_id, entity_id, kind, fields, mine, at in rows:
            cur = self.conn.execute("SELECT * FROM customers WHERE id = ?", (entity_id,))
            found = cur.fetchone()
            now = dict(zip([d[0] for d in cur.description], found, strict=True)) if found else {}
            values = orjson.loads(mine)
            out.append({
                "kind": kind, "id": entity_id, "op_id": op_id, "state": "conflict", "at": at,
                "customer_id": entity_id, "name": now.get("name"),
                "customer": card_label(now.get("name"), now.get("card_no"), entity_id),
                "fields": [{"field": f, "mine": values.get(f), "kept": now.get(f)}
                           for f in orjson.loads(fields)]})
        return out

    def dismiss_conflict(self, op_id: str) -> bool:
        """The rep has seen a conflict: it leaves the list (the row stays, dated)."""
        with self.conn:
            cur = self.conn.execute(
                "UPDATE conflicts SET dismissed_at = ? WHERE op_id = ? AND dismissed_at IS NULL",
                (iso(self.clock.now()), op_id))
        return cur.rowcount > 0

    def returned_plans(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT day, comment, reviewed_by, reviewed_at FROM plans WHERE status = 'returned' "
            "ORDER BY day").fetchall()
        return [{"kind": "plan", "id": r[0], "state": "returned", "customer": f"plan for {r[0]}",
                 "reason": r[1], "by": r[2], "reviewed_at": r[3]} for r in rows]

    def attention(self, top: int | None = None) -> dict[str, Any]:
        """Everything that waits for the rep, by group (at most `top` items of each, the
        most urgent warnings first), with how many there are of each in `counts`."""
        groups = {"returned_visits": self.returned_visits(), "refused": self.refused_ops(),
                  "returned_plans": self.returned_plans(), "conflicts": self.conflicts()}
        counts = {k: len(v) for k, v in groups.items()}
        groups = {k: v[:top] for k, v in groups.items()}
        groups["pool_warnings"], counts["pool_warnings"] = self._deadlines(True, None, top)
        return {"counts": counts, **groups}

    def pool_warning_count(self) -> int:
        return self._deadlines(True, None, 1)[1]
