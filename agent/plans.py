"""Daily visit plans (每日拜访计划), made offline.

The rep builds a day's plan item by item (`plan_items`: the working copy) and submits
it whole: one `plan.submit` operation through the outbox, like any other change. The
plan as submitted (`plans`) is the archive's copy from the last pull, or the rep's
submission still on its way up; the manager approves it or returns it with a comment,
and an approved plan is read-only here. Once the day has begun, the plan is set
against the visits logged on this laptop that day: done, missed (open while the day
lasts) and unplanned.

Days are the laptop's calendar days (its local time zone): the rep's working day.
A mixin of agent/store.py's Store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from schema.clock import Clock, iso, parse_iso
from schema.enums import OpKind, PlanStatus, VisitPurpose

from .attention import card_label
from .errors import StoreError

if TYPE_CHECKING:
    import sqlcipher3

# schema.models.PLAN_MAX_ITEMS (tests/test_agent_plans.py checks they agree): importing
# the models here would cost every command the pydantic start-up.
PLAN_MAX_ITEMS = 50
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class PlanError(StoreError):
    """A plan change refused; the message says why and what to do."""


def parse_day(text: str) -> str:
    """A YYYY-MM-DD day, checked to be a real date."""
    text = text.strip()
    try:
        if not _DAY.match(text):
            raise ValueError
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise PlanError(f"{text!r} is not a day: give it as YYYY-MM-DD") from None


def parse_time(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not _TIME.match(text):
        raise PlanError(f"{text!r} is not a time of day: give it as HH:MM (24-hour clock)")
    return text


def local_day(moment: datetime) -> str:
    """The laptop's calendar day of a moment."""
    return moment.astimezone().date().isoformat()


def day_bounds(day: str) -> tuple[str, str]:
    """The UTC times [start, end) of a local calendar day, as the vault writes times."""
    start = datetime.fromisoformat(day).astimezone()  # naive: local midnight, DST-aware
    end = datetime.fromisoformat((date.fromisoformat(day) + timedelta(days=1)).isoformat())
    return iso(start), iso(end.astimezone())


class Plans:
    """The rep's daily plans in the vault (mixed into Store)."""

    conn: sqlcipher3.Connection
    rep_id: str
    clock: Clock

    if TYPE_CHECKING:
        def transaction(self) -> AbstractContextManager[sqlcipher3.Connection]: ...

        def _enqueue(self, kind: OpKind, entity_id: str, data: dict[str, Any], base_rev: int,
                     at: str | None = None) -> str: ...

        def get_customer(self, ref: str) -> dict[str, Any]: ...

    def today(self) -> str:
        return local_day(self.clock.now())

    def _submitted(self, day: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM plans WHERE day = ?", (day,))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is None:
            return None
        plan = dict(zip(names, row, strict=True))
        plan["items"] = orjson.loads(plan["items"])
        return plan

    def _pending_submit(self, day: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM outbox WHERE state = 'pending' AND kind = ? AND entity_id = ? LIMIT 1",
            (OpKind.plan_submit.value, day)).fetchone() is not None

    def _changeable(self, day: str) -> None:
        """Refuse a change to a day that is over, or to a plan the manager approved."""
        if day < self.today():
            raise PlanError(f"{day} is over: a plan is made for today or a later day")
        plan = self._submitted(day)
        if plan is not None and plan["status"] == PlanStatus.approved:
            raise PlanError(f"the plan for {day} is approved: read-only. "
                            "Ask your manager to change it.")

    def _draft(self, day: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT customer_id, purpose, time FROM plan_items WHERE day = ? "
            "ORDER BY time IS NULL, time, added_at, customer_id", (day,)).fetchall()
        return [{"customer_id": r[0], "purpose": r[1], "time": r[2]} for r in rows]

    # --- the working copy -------------------------------------------------------------

    def plan_add(self, day: str, customer: str, purpose: str, time: str | None = None
                 ) -> dict[str, Any]:
        """Add a customer to a day's plan (again: change its purpose or time)."""
        day, time = parse_day(day), parse_time(time)
        purpose = VisitPurpose(purpose).value
        card = self.get_customer(customer)
        self._changeable(day)
        others = self.conn.execute(
            "SELECT count(*) FROM plan_items WHERE day = ? AND customer_id != ?",
            (day, card["id"])).fetchone()[0]
        if others >= PLAN_MAX_ITEMS:
            raise PlanError(f"the plan for {day} already has {others} customers, the most "
                            "a day's plan holds: remove one first")
        with self.transaction() as c:
            c.execute(
                "INSERT INTO plan_items (day, customer_id, purpose, time, added_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, customer_id) DO UPDATE SET "
                "purpose = excluded.purpose, time = excluded.time",
                (day, card["id"], purpose, time, iso(self.clock.now())))
        return self.plan_show(day)

    def plan_remove(self, day: str, customer: str) -> dict[str, Any]:
        """Take a customer off a day's plan (by id or card number; a card that has
        left the laptop by the id the plan shows)."""
        day = parse_day(day)
        self._changeable(day)
        try:
            ids = [self.get_customer(customer)["id"]]
        except StoreError:  # no longer on the laptop: the id as the plan shows it
            ids = [customer.strip()]
        with self.transaction() as c:
            gone = c.execute("DELETE FROM plan_items WHERE day = ? AND customer_id = ?",
                             (day, ids[0])).rowcount
        if not gone:
            raise PlanError(f"{customer!r} is not on the plan for {day}: "
                            f"see `fieldvault plan show --date {day}`")
        return self.plan_show(day)

    def plan_submit(self, day: str) -> dict[str, Any]:
        """Queue the whole plan of `day` for the manager: one plan.submit operation."""
        from schema.models import PlanSubmit

        day = parse_day(day)
        self._changeable(day)
        items = self._draft(day)
        if not items:
            raise PlanError(f"nothing is planned for {day}: add customers with "
                            f"`fieldvault plan add --date {day} --customer C --purpose P`")
        plan = PlanSubmit.model_validate({"day": day, "items": items})
        data = plan.model_dump(mode="json")
        current = self._submitted(day)
        now = iso(self.clock.now())
        with self.transaction() as c:
            op_id = self._enqueue(OpKind.plan_submit, day, data,
                                  current["rev"] if current else 0)
            c.execute(
                "INSERT INTO plans (day, id, rev, status, items, submitted_at) "
                "VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (day) DO UPDATE SET "
                "status = excluded.status, items = excluded.items, "
                "submitted_at = excluded.submitted_at",
                (day, f"{self.rep_id}:{day}", PlanStatus.submitted.value,
                 orjson.dumps(data["items"]).decode(), now))
        return {**self.plan_show(day), "op_id": op_id}

    # --- what the archive says ---------------------------------------------------------

    def _apply_plans(self, records: list[dict[str, Any]]) -> None:
        """Inside a pull's transaction: the archive's plans (PlanChange records). A
        submission still on its way up stays what the laptop shows; a day with no
        working copy here (a new laptop) gets the archive's items as one."""
        for r in records:
            if r.get("rep_id") != self.rep_id:
                continue
            day = r["day"]
            items = orjson.dumps(r["items"]).decode()
            self.conn.execute(
                "INSERT INTO plans (day, id, rev, status, items, comment, submitted_at, "
                "reviewed_by, reviewed_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (day) DO "
                "UPDATE SET id = excluded.id, rev = excluded.rev, status = excluded.status, "
                "items = excluded.items, comment = excluded.comment, "
                "submitted_at = excluded.submitted_at, reviewed_by = excluded.reviewed_by, "
                "reviewed_at = excluded.reviewed_at WHERE excluded.rev >= plans.rev",
                (day, r["id"], r["rev"], r["status"], items, r.get("comment") or "",
                 r["submitted_at"], r.get("reviewed_by"), r.get("reviewed_at")))
            pending = self.conn.execute(
                "SELECT data FROM outbox WHERE state = 'pending' AND kind = ? AND entity_id = ? "
                "ORDER BY seq DESC LIMIT 1", (OpKind.plan_submit.value, day)).fetchone()
            if pending is not None:
                self.conn.execute(
                    "UPDATE plans SET status = ?, items = ? WHERE day = ?",
                    (PlanStatus.submitted.value,
                     orjson.dumps(orjson.loads(pending[0])["items"]).decode(), day))
            if self.conn.execute("SELECT 1 FROM plan_items WHERE day = ? LIMIT 1",
                                 (day,)).fetchone() is None:
                self.conn.executemany(
                    "INSERT INTO plan_items (day, customer_id, purpose, time, added_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, customer_id) DO NOTHING",
                    [(day, i["customer_id"], i["purpose"], i.get("time"), r["submitted_at"])
                     for i in r["items"]])

    # --- reading -------------------------------------------------------------------------

    def _labels(self, ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        marks = ",".join("?" for _ in ids)
        rows = self.conn.execute(
            f"SELECT id, name, card_no FROM customers WHERE id IN ({marks})",  # noqa: S608
            list(ids)).fetchall()
        found = {r[0]: card_label(r[1], r[2], r[0]) for r in rows}
        return {i: found.get(i) or card_label(None, None, i) for i in ids}

    def _visits_on(self, day: str) -> Iterator[tuple[str, str, str, str]]:
        start, end = day_bounds(day)
        yield from self.conn.execute(
            "SELECT id, customer_id, started_at, purpose FROM visits WHERE rep_id = ? "
            "AND status != 'void' AND started_at >= ? AND started_at < ? ORDER BY started_at",
            (self.rep_id, start, end))

    def plan_show(self, day: str | None = None) -> dict[str, Any]:
        """A day's plan: the working copy, its review state, and (once the day has
        begun) the plan as submitted against the visits logged here that day."""
        day = parse_day(day) if day else self.today()
        draft = self._draft(day)
        plan = self._submitted(day)
        pending = self._pending_submit(day)
        out: dict[str, Any] = {"day": day, "status": plan["status"] if plan else "draft"}
        if pending:
            out["sync"] = "submitted here, waiting for `fieldvault sync`"
        if plan:
            out.update(comment=plan["comment"], reviewed_by=plan["reviewed_by"],
                       reviewed_at=plan["reviewed_at"], submitted_at=plan["submitted_at"])
            key = [(i["customer_id"], i["purpose"], i.get("time")) for i in plan["items"]]
            if sorted(key, key=str) != sorted(
                    [(i["customer_id"], i["purpose"], i["time"]) for i in draft], key=str):
                out["unsubmitted_changes"] = True
        planned = plan["items"] if plan else draft
        visits = list(self._visits_on(day)) if day <= self.today() else []
        labels = self._labels({i["customer_id"] for i in draft + planned}
                              | {v[1] for v in visits})
        results: dict[str, str] = {}
        if day <= self.today():
            visited: dict[str, list[str]] = {}
            for vid, cid, _, _ in visits:
                visited.setdefault(cid, []).append(vid)
            unfinished = "missed" if day < self.today() else "open"
            actual: dict[str, list[dict[str, Any]]] = {"done": [], unfinished: [],
                                                       "unplanned": []}
            for item in planned:
                cid = item["customer_id"]
                results[cid] = "done" if cid in visited else unfinished
                actual[results[cid]].append({**item, "customer": labels[cid],
                                             "visits": visited.get(cid, [])})
            planned_ids = {i["customer_id"] for i in planned}
            for vid, cid, started, purpose in visits:
                if cid not in planned_ids:
                    at = parse_iso(started).astimezone().strftime("%H:%M")
                    actual["unplanned"].append({"customer_id": cid, "customer": labels[cid],
                                                "visit": vid, "started_at": started,
                                                "time": at, "purpose": purpose})
            out["actual"] = actual
        out["items"] = [{**i, "customer": labels[i["customer_id"]],
                         "result": results.get(i["customer_id"])} for i in draft]
        return out
