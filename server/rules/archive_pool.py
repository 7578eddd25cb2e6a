"""The archive's part for the pool (公海), locks, fair distribution and the scheduled
jobs: one transaction per method (the jobs: one per batch), the rules themselves in
rules/pool.py, rules/distribution.py and rules/duplicates.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schema.clock import iso, parse_iso
from schema.enums import OwnershipSource, StaffRole
from schema.models import CustomerCreate

from ..archive.errors import ArchiveError, Forbidden, NotFound
from ..archive.store import Store
from . import access, audit, cards, distribution, duplicates, policies, pool
from .facade import ArchiveBase, customer_of, rep_of, staff_card_filter
from .policies import PoolPolicy


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise ArchiveError("invalid_reason", "give a reason of 1-500 characters")
    return reason


def _team_of(s: Store, manager: str) -> list[dict[str, Any]]:
    """The active reps under `manager`: a manager's staff account, or a rep row."""
    account = s.staff(manager)
    if account is not None and account["role"] == StaffRole.manager.value:
        head = account["rep_id"]
    else:
        head = rep_of(s, manager)["id"]
    rows = [s.rep(rid) for rid in s.reps_under(head)]
    team = sorted((r for r in rows if r is not None and r["active"]),
                  key=lambda r: (r["created_at"], r["id"]))
    if not team:
        raise ArchiveError("empty_team", f"{manager} has no active rep under them")
    return team


def _reps_named(s: Store, names: list[str]) -> list[dict[str, Any]]:
    reps: dict[str, dict[str, Any]] = {}
    for name in names:
        rep = rep_of(s, name.strip())
        if not rep["active"]:
            raise ArchiveError("rep_inactive", f"{rep['name']} has left: leave them out")
        reps.setdefault(rep["id"], rep)
    if not reps:
        raise ArchiveError("no_reps", "name at least one rep")
    return list(reps.values())


class PoolMethods(ArchiveBase):
    if TYPE_CHECKING:  # the facade's own (rules/archive.py), which the jobs run too
        def process_due_revocations(self, at: str | None = None) -> list[str]: ...

        def check_evidence(self, limit: int = ...) -> dict[str, int]: ...

        def apply_received(self) -> int: ...

    # --- policy and warnings ---------------------------------------------------------

    def pool_policy(self) -> dict[str, int]:
        with self._read() as s:
            return policies.as_dict(policies.read(s, PoolPolicy))

    def set_pool_policy(self, changes: dict[str, int], by: str) -> dict[str, int]:
        """Change pool settings (admin); ArchiveError `invalid_policy` changes nothing."""
        now = self.now()
        with self._write() as s:
            who = access.staff_member(s, by)
            access.authorize(s, who, "pool.policy.set")
            policy = policies.write(s, PoolPolicy, changes)
            audit.append(s, now, who.actor, "pool.policy.set", "", dict(changes))
            return policies.as_dict(policy)

    def pool_warnings(self, rep: str | None = None, by: str | None = None) -> list[dict[str, Any]]:
        """Customers whose owners were warned they return to the pool soon (still true
        now), soonest first. With `by`, as that staff member sees them (a manager: their
        team's)."""
        with self._read() as s:
            rep_ids = [rep_of(s, rep)["id"]] if rep else None
            if by is not None:
                who = access.staff_member(s, by)
                access.authorize(s, who, "customer.read", rep_ids[0] if rep_ids else None)
                team = access.scope(s, who)
                if team is not None and rep_ids is None:
                    rep_ids = sorted(team)
            return pool.current_warnings(s, rep_ids)

    # --- the scheduled jobs ------------------------------------------------------------

    def run_jobs(self, at: str | None = None, by: str | None = None) -> dict[str, Any]:
        """Every due job as of `at` (default now): departures that have come due, pool
        returns, then warnings, and a batch of pushed visits' signatures to verify.
        Idempotent: a second run at the same time does nothing. With `by`, a staff
        member's order (authorized, audited)."""
        try:
            when = parse_iso(at) if at else self.clock.now()
        except ValueError:
            raise ArchiveError("invalid_time", f"{at!r} is not an ISO time like "
                               "2026-12-01T09:00:00Z") from None
        if by is not None:
            with self._write() as s:
                who = access.staff_member(s, by)
                access.authorize(s, who, "jobs.run")
                audit.append(s, self.now(), who.actor, "jobs.run", "", {"at": iso(when)})
        departed = self.process_due_revocations(iso(when))
        # Visits stored to be applied later count for the pool clock: they go in first.
        for _ in range(10**9):
            if not self.apply_received():
                break
        returned: list[dict[str, Any]] = []
        for _ in range(10**9):
            with self._write() as s:
                batch = pool.return_due(s, when)
            returned += batch
            if len(batch) < pool.BATCH:
                break
        with self._write() as s:
            warned = pool.warn_due(s, when)
        proofs = self.check_evidence()
        return {"at": iso(when), "departures_applied": departed, "returned": len(returned),
                "returned_cards": [c["card_no"] for c in returned], "warned": warned,
                "evidence_checked": proofs["checked"], "evidence_failed": proofs["failed"]}

    # --- locks and assignment ------------------------------------------------------------

    def lock_customer(self, ref: str, by: str, reason: str = "key account") -> dict[str, Any]:
        """A key account: exempt from pool returns. Conflict `in_pool` for a pool card."""
        with self._write() as s:
            return pool.set_lock(s, self.now(), access.staff_member(s, by), ref, True, reason)

    def unlock_customer(self, ref: str, by: str, reason: str = "no longer a key account"
                        ) -> dict[str, Any]:
        with self._write() as s:
            return pool.set_lock(s, self.now(), access.staff_member(s, by), ref, False, reason)

    def assign_customer(self, ref: str, rep: str | None, reason: str, by: str) -> dict[str, Any]:
        """A staff member gives a customer to `rep` (None: the pool). A manager may move
        only their team's customers, to their team or the pool."""
        reason = _reason(reason)
        with self._write() as s:
            who = access.staff_member(s, by)
            card = customer_of(s, ref)
            access.authorize(s, who, "customer.assign", card["owner_rep_id"])
            to = rep_of(s, rep) if rep else None
            if to is not None:
                access.authorize(s, who, "customer.assign", to["id"])
                if not to["active"]:
                    raise ArchiveError("rep_inactive", f"{to['name']} has left")
            return cards.assign(s, self.now(), card["id"], to["id"] if to else None, reason,
                                who.actor)

    # --- fair distribution -----------------------------------------------------------------

    def distribute(self, by: str | None, leads: list[tuple[str, CustomerCreate]] | None = None,
                   to_team: str | None = None, to_reps: list[str] | None = None,
                   dry_run: bool = False) -> dict[str, Any]:
        """Deal new leads (label, card) — or, with `leads=None`, the pool's customers —
        round-robin over a manager's team or the named reps, balancing what each holds
        and skipping reps at their owned cap. Returns the plan with a reason for each
        assignment; `dry_run` writes nothing. A lead that duplicates a card is refused
        (Conflict `duplicate_customer`, naming its label): all or none."""
        if (to_team is None) == (to_reps is None):
            raise ArchiveError("invalid_target", "name either a team (--to-team MANAGER) or "
                               "reps (--to-reps R1,R2)")
        now = self.now()
        with self._read() if dry_run else self._write() as s:
            who = access.caller(s, by, "customer.distribute")
            reps = _team_of(s, to_team) if to_team is not None else _reps_named(s, to_reps or [])
            for rep in reps:
                if who is not None:
                    access.authorize(s, who, "customer.distribute", rep["id"])
            policy = policies.read(s, PoolPolicy)
            load = {r["id"]: s.count_customers(r["id"]) for r in reps}
            caps = {r["id"]: policy.cap(r["tier"]) for r in reps}
            if leads is not None:
                duplicates.refuse_batch(s, ((label, card.model_dump()) for label, card in leads))
                items = [{"key": label, "label": label, "name": card.name,
                          "grade": card.grade.value} for label, card in leads]
            else:
                items = [{"key": c["id"], "label": c["card_no"], "name": c["name"],
                          "grade": c["grade"]} for c in s.customers(None, pool=True)]
            dealt = distribution.plan(items, reps, load, caps)
            made = {} if dry_run else self._apply_plan(s, now, who, leads, dealt)
            names = {r["id"]: r["name"] for r in reps}
            rows = []
            for item in items:
                rep_id, why = dealt.assignments[item["key"]]
                rows.append({"customer": made.get(item["key"], item["label"]),
                             "name": item["name"], "grade": item["grade"],
                             "to": names.get(rep_id or ""), "to_rep_id": rep_id, "reason": why})
            counts = dict.fromkeys(names.values(), 0)
            for row in rows:
                if row["to"]:
                    counts[row["to"]] += 1
            summary = {"dry_run": dry_run, "source": "leads" if leads is not None else "pool",
                       "assigned": counts, "left_in_pool": sum(1 for r in rows if not r["to"]),
                       "skipped": [{"rep": names[r], "reason": why}
                                   for r, why in dealt.skipped.items()]}
            if not dry_run:
                audit.append(s, now, access.actor(who), "customer.distribute", "",
                             {k: v for k, v in summary.items() if k != "skipped"})
            return {**summary, "plan": rows}

    @staticmethod
    def _apply_plan(s: Store, now: str, who: access.StaffMember | None,
                    leads: list[tuple[str, CustomerCreate]] | None,
                    dealt: distribution.Plan) -> dict[str, str]:
        """Carry out the plan; returns the card number of each new lead by its label."""
        if leads is None:
            for customer_id, (rep_id, why) in dealt.assignments.items():
                if rep_id is not None:
                    cards.assign(s, now, customer_id, rep_id, f"fair distribution: {why}",
                                 access.actor(who))
            return {}
        made = {}
        for label, card in leads:
            rep_id, why = dealt.assignments[label]
            row = cards.insert_customer(s, now, card, rep_id, access.actor(who),
                                        OwnershipSource.assigned,
                                        reason=f"fair distribution: {why}")
            made[label] = row["card_no"]
        return made

    # --- staff listings ------------------------------------------------------------------

    def find_customers(self, by: str, owner: str | None = None, grade: str | None = None,
                       in_pool: bool | None = None, locked: bool | None = None,
                       not_visited_days: int | None = None, limit: int = 100,
                       offset: int = 0) -> dict[str, Any]:
        """Cards as `by` may see them (a manager: their team's and the pool's), filtered;
        one page and the total."""
        with self._read() as s:
            where = staff_card_filter(s, by, self.clock.now(), owner, grade, in_pool, locked,
                                      not_visited_days)
            return {"customers": s.find_customers(where, limit, offset),
                    "total": s.count_found_customers(where)}

    def customer_file(self, ref: str, by: str) -> dict[str, Any]:
        """One card with its ownership history and every visit, for a staff member who
        may see it (a manager: their team's or the pool's)."""
        with self._read() as s:
            who = access.staff_member(s, by)
            card = customer_of(s, ref)
            access.authorize(s, who, "customer.read", card["owner_rep_id"])
            return {"card": card, "ownership": s.ownership(card["id"]),
                    "visits": list(s.visits(None, card["id"]))}

    # --- a card's owners, for the rep serving it (device API, online) ----------------------

    def owner_periods(self, rep_id: str, ref: str) -> list[dict[str, Any]]:
        """Who served the card when, oldest first: [{rep_name, since, until, source}]
        (until is None for the current period; rep_name is None while in the pool). Only
        the card's current owner may read it; anyone else gets the same 404 as for a card
        that does not exist, so a rep cannot probe for other reps' customers."""
        with self._read() as s:
            card = s.customer_by_ref(ref)
            if card is None or card["owner_rep_id"] != rep_id:
                raise NotFound("unknown_customer", f"no customer {ref!r} served by you")
            rows = s.ownership(card["id"])
            names: dict[str, str] = {}
            for r in rows:
                rid = r["to_rep_id"]
                if rid and rid not in names:
                    rep = s.rep(rid)
                    names[rid] = rep["name"] if rep else rid
        return [{"rep_name": names.get(r["to_rep_id"]) if r["to_rep_id"] else None,
                 "since": r["at"], "until": rows[n + 1]["at"] if n + 1 < len(rows) else None,
                 "source": r["source"]} for n, r in enumerate(rows)]

    # --- the pool as a rep's laptop sees it (device API) ------------------------------------

    def pool_page(self, rep_id: str, search: str = "", limit: int = 50,
                  offset: int = 0) -> dict[str, Any]:
        with self._read() as s:
            return pool.page(s, self.clock.now(), rep_id, search, limit, offset)

    def pool_entries(self, search: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        """The pool's cards, limited fields (the office's `pool list`)."""
        with self._read() as s:
            return s.pool_entries(search, limit if limit is not None else s.count_pool(search), 0)

    def count_pool(self, search: str = "") -> int:
        with self._read() as s:
            return s.count_pool(search)

    def claim(self, rep_id: str, ref: str) -> dict[str, Any]:
        """A rep claims a pool customer (see rules/pool.claim for the refusals)."""
        with self._write() as s:
            rep = s.rep(rep_id)
            if rep is None or not rep["active"]:
                raise Forbidden("rep_inactive", "this rep has left")
            return pool.claim(s, self.clock.now(), rep_id, ref)

    def after_visit_accepted(self, customer_id: str, visit_id: str) -> dict[str, Any] | None:
        """The pool's hook for a visit accepted late (e.g. from quarantine), in its own
        transaction; inside one, call rules/pool.after_visit_accepted instead."""
        with self._write() as s:
            customer, visit = s.customer(customer_id), s.visit(visit_id)
            if customer is None or visit is None:
                raise NotFound("unknown_visit", f"no visit {visit_id!r} of {customer_id!r}")
            return pool.after_visit_accepted(s, self.now(), customer, visit)


__all__ = ["PoolMethods"]
