"""The office's oversight: HR's people and departures (a preview first), the admin's
enrollment codes, policies with a preview of their effect, the audit log, and the
fleet of laptops by risk. Each method checks the caller (rules/access.py) inside its
transaction; what changes anything is in the audit chain under the caller's name.

The departure preview runs the same rule the departure applies (departures.plan) in
a read transaction: what it shows is what confirming would do, at that moment.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from datetime import datetime, timedelta
from typing import Any

import orjson
import segno

from schema.clock import iso, parse_iso
from schema.enums import Grade, StaffRole

from ..archive.errors import ArchiveError, NotFound
from ..archive.store import AuditFilter, Store
from . import access, audit, departures, enrollment, leases, policies, staff, wipes
from .facade import ArchiveBase, rep_of
from .policies import PoolPolicy

# The fleet's risk ranks, most urgent first: a departed rep's laptop not yet wiped, a
# laptop past its block deadline (its unsynced work is stuck), one near it (more than
# NEAR of its offline window used), the rest, and laptops done with (wiped).
RISKS = ("wipe_pending", "blocked", "near_block", "ok", "wiped")
NEAR = 0.5
MAX_AUDIT_PAGE = 500


def _scope_reps(s: Store, who: access.StaffMember | None) -> set[str] | None:
    return access.scope(s, who) if who is not None else None


def _in_scope(rep_id: str, team: set[str] | None) -> bool:
    return team is None or rep_id in team


def device_risk(device: dict[str, Any], now: datetime) -> tuple[str, float]:
    """The device's risk rank and how much of its offline window it has used (1.0 at
    the block deadline; 0 for a device not active)."""
    state = device["state"]
    if state == "wiped":
        return "wiped", 0.0
    if state in ("revoked", "wipe_pending"):
        return "wipe_pending", 0.0
    start = device["lease_issued_at"] or device["enrolled_at"]
    if not device["block_at"]:
        return "ok", 0.0
    began, block = parse_iso(start), parse_iso(device["block_at"])
    window = max((block - began).total_seconds(), 1.0)
    used = (now - began).total_seconds() / window
    if block <= now:
        return "blocked", used
    return ("near_block" if used >= NEAR else "ok"), used


def fleet_row(device: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A device as the fleet view shows it. Its unsynced work is what the laptop
    reported at its last check-in (POST /v1/lease): how many operations, and the age of
    the oldest (`unsynced_age_s`); null from an agent too old to report it, where all
    that is known is that anything unsynced was made after the last sync
    (`unsynced_at_most_s`)."""
    risk, used = device_risk(device, now)
    last = device["last_seen_at"]
    oldest = device["oldest_unsynced_at"]
    return {**{k: device[k] for k in (
        "id", "rep_id", "rep_name", "name", "state", "enrolled_at", "last_seen_at", "revoked_at",
        "lease_issued_at", "block_at", "wipe_at", "wipe_ordered_at", "wipe_receipt_at",
        "unsynced_ops", "oldest_unsynced_at")},
        "risk": risk, "window_used": round(used, 3),
        "unsynced_age_s": (now - parse_iso(oldest)).total_seconds() if oldest else None,
        "unsynced_at_most_s": (now - parse_iso(last)).total_seconds() if last else None}


def enroll_command(server_url: str, code: str) -> str:
    return f"fieldvault enroll --server {server_url} --code {code}"


def qr_svg(text: str, label: str) -> str:
    """`text` as a QR code, inline SVG (no style element: the console's CSP allows none)."""
    svg = segno.make(text, error="m").svg_inline(scale=4, border=2)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)


class OpsMethods(ArchiveBase):
    # --- HR: people, departures, tokens -------------------------------------------------

    def people(self, by: str) -> list[dict[str, Any]]:
        """Every rep `by` may see (a manager: their team) with their laptops (state, last
        check-in, lease deadlines, wipe order and receipt) and their departure if any."""
        with self._read() as s:
            who = access.caller(s, by, "device.read")
            team = _scope_reps(s, who)
            devices: dict[str, list[dict[str, Any]]] = {}
            for d in wipes.devices_as_seen(s, self.now(), None, None):
                devices.setdefault(d["rep_id"], []).append(d)
            leaving = {r["rep_id"]: departures.summary(r) for r in s.revocations()}
            return [{"id": r["id"], "name": r["name"], "tier": r["tier"],
                     "active": bool(r["active"]), "customers": r["customers"],
                     "devices": devices.get(r["id"], []), "departure": leaving.get(r["id"])}
                    for r in s.reps() if _in_scope(r["id"], team)]

    def departure_preview(self, rep: str, reassign_to: str, by: str,
                          effective_at: str | None = None) -> dict[str, Any]:
        """What confirming the departure would do, written nowhere: who gets how many of
        the rep's customers, which laptops are refused. Refused as the departure would
        be (no manager, unknown successor, ...)."""
        with self._read() as s:
            access.caller(s, by, "departure.manage")
            row = rep_of(s, rep)
            if not row["active"]:
                raise ArchiveError("already_left", f"{row['name']} has left already: "
                                   "see their departure report")
            when = departures.effective_time(effective_at, self.now())
            targets = departures.plan(s, row, reassign_to)
            names = s.rep_names()
            tally = departures.tally(targets)
            pool_count = tally.pop("pool", 0)
            return {
                "rep": {"id": row["id"], "name": row["name"]},
                "reassign_to": reassign_to, "effective_at": when,
                "scheduled": when > self.now(), "customers": len(targets),
                "to": sorted(({"rep_id": k, "name": names.get(k, k), "count": v}
                              for k, v in tally.items()), key=lambda t: (-t["count"], t["name"])),
                "to_pool": pool_count,
                "devices": [d for d in wipes.devices_as_seen(s, self.now(), row["id"], None)
                            if d["state"] in ("active", "blocked")],
                "visits_preserved": s.count_visits(row["id"], None),
            }

    def depart(self, rep: str, reason: str, reassign_to: str, effective_at: str | None,
               by: str, source: str = "console") -> dict[str, Any]:
        """Record the rep's departure as staff member `by` (departure.manage): applied
        now, or scheduled for `effective_at`. Idempotent (`already`)."""
        with self._write() as s:
            actor = access.actor(access.caller(s, by, "departure.manage"))
            return departures.request(s, self.now(), rep_of(s, rep), reason, reassign_to,
                                      effective_at, actor, source)

    def departures_list(self, by: str) -> list[dict[str, Any]]:
        """Every departure, newest first, with the rep's name."""
        with self._read() as s:
            access.caller(s, by, "departure.manage")
            names = s.rep_names()
            return [{**departures.summary(r), "rep_name": names.get(r["rep_id"], r["rep_id"])}
                    for r in reversed(s.revocations())]

    def departure_report_for(self, rep: str, by: str) -> dict[str, Any]:
        """The departure report (departures.report) for a staff member allowed it."""
        with self._read() as s:
            access.caller(s, by, "departure.manage")
            return departures.report(s, self.now(), rep_of(s, rep))

    def hr_tokens(self, by: str) -> list[dict[str, Any]]:
        with self._read() as s:
            access.caller(s, by, "hr_token.manage")
            return staff.with_expiry(s.hr_tokens(), staff.HR_TOKEN_MAX_AGE)

    def issue_hr_token(self, name: str, by: str) -> str:
        """A bearer token for the HR system (shown once; only its SHA-256 is kept)."""
        name = staff.token_name(name)
        token = "fvhr_" + secrets.token_urlsafe(32)
        now = self.now()
        with self._write() as s:
            actor = access.actor(access.caller(s, by, "hr_token.manage"))
            s.insert_hr_token(hashlib.sha256(token.encode()).hexdigest(), name, now)
            audit.append(s, now, actor, "hr_token.create", name)
        return token

    def revoke_hr_token(self, name: str, by: str) -> int:
        """Revoke the HR tokens called `name`; NotFound `unknown_token` if none is live."""
        now = self.now()
        with self._write() as s:
            actor = access.actor(access.caller(s, by, "hr_token.manage"))
            count = s.revoke_hr_tokens(name, now)
            if not count:
                raise NotFound("unknown_token", f"no live HR token named {name!r}")
            audit.append(s, now, actor, "hr_token.revoke", name, {"count": count})
        return count

    # --- admin: enrollment, policies, audit, overview ---------------------------------

    def enrollment_code(self, rep: str, ttl: timedelta, server_url: str,
                        by: str) -> dict[str, Any]:
        """A one-time enrollment code for `rep` (shown once), the command a laptop runs
        with it, and that command as a QR code (inline SVG)."""
        if ttl <= timedelta(0) or ttl > timedelta(days=30):
            raise ArchiveError("invalid_ttl", "the code's lifetime must be between 1s and 30 days")
        code, now = enrollment.new_code(), self.now()
        expires = iso(self.clock.now() + ttl)
        with self._write() as s:
            actor = access.actor(access.caller(s, by, "enroll.create"))
            row = rep_of(s, rep)
            if not row["active"]:
                raise ArchiveError("rep_inactive", f"{row['name']} has left: no new laptop")
            s.insert_enroll_code(enrollment.hash_code(code), row["id"], now, expires)
            audit.append(s, now, actor, "enroll_code.create", row["id"], {"expires_at": expires})
        command = enroll_command(server_url, code)
        return {"rep_id": row["id"], "rep_name": row["name"], "code": code,
                "expires_at": expires, "command": command, "qr_svg": qr_svg(command, command)}

    def set_offline_policy(self, by: str, block_hours: float | None = None,
                           wipe_days: float | None = None, require_pin: bool | None = None,
                           timezone: str | None = None) -> dict[str, Any]:
        """The offline policy (leases.set_policy) changed by staff member `by`."""
        with self._write() as s:
            actor = access.actor(access.caller(s, by, "policy.set"))
            return leases.set_policy(s, self.now(), block_hours, wipe_days, require_pin, actor,
                                     timezone)

    def policy_preview(self, by: str, pool_changes: dict[str, int] | None = None,
                       block_hours: float | None = None) -> dict[str, Any]:
        """What a policy change would do now, written nowhere: customers due back in the
        pool and owners warned, today's policy against the new one; laptops that have
        not checked in for longer than the new block time. Refused (`invalid_policy`)
        as setting it would be."""
        moment = self.clock.now()
        with self._read() as s:
            access.caller(s, by, "policy.set")
            current = policies.read(s, PoolPolicy)
            policies.check(PoolPolicy, pool_changes or {})
            proposed = PoolPolicy(**{**policies.as_dict(current), **(pool_changes or {})})
            pool = self._pool_reach(s, {"now": current, "new": proposed}, moment)
            offline = leases.policy(s)
            hours = offline["offline_block_hours"] if block_hours is None else block_hours
            if not 0 < hours <= 24 * 365:
                raise ArchiveError("invalid_policy", "offline block hours must be in (0, 8760]")
            active = [d for d in s.devices(None, None) if d["state"] == "active"]
            return {"pool": pool, "policy": policies.as_dict(proposed), "offline": {
                "block_hours_now": offline["offline_block_hours"], "block_hours_new": hours,
                "devices_active": len(active),
                "past_block_now": self._past(active, moment, offline["offline_block_hours"]),
                "past_block_new": self._past(active, moment, hours)}}

    @staticmethod
    def _pool_reach(s: Store, policies_: dict[str, PoolPolicy],
                    moment: datetime) -> dict[str, dict[str, int]]:
        """Per policy: cards due back (`due`) and cards whose owner is warned but not yet
        due (`warned`), counted in one scan."""
        asks: list[tuple[str, str]] = []
        for policy in policies_.values():
            for grade in Grade:
                days = policy.return_days(grade)
                asks.append((grade.value, iso(moment - timedelta(days=days))))
                asks.append((grade.value, iso(moment - timedelta(days=max(days - policy.warn_days,
                                                                           0)))))
        counts = iter(s.count_pool_candidates(asks))
        out = {}
        for key in policies_:
            due = warned = 0
            for _grade in Grade:
                due_n, warned_n = next(counts), next(counts)
                due, warned = due + due_n, warned + warned_n
            out[key] = {"due": due, "warned": warned - due}
        return out

    @staticmethod
    def _past(devices: list[dict[str, Any]], moment: datetime, hours: float) -> int:
        cutoff = iso(moment - timedelta(hours=hours))
        return sum(1 for d in devices if (d["lease_issued_at"] or d["enrolled_at"]) <= cutoff)

    def audit_log(self, by: str, where: AuditFilter | None = None, limit: int = 50,
                  offset: int = 0) -> dict[str, Any]:
        """One page of the audit log, newest first, filtered; and the total."""
        if not 1 <= limit <= MAX_AUDIT_PAGE or offset < 0:
            raise ArchiveError("invalid_page", f"limit must be 1-{MAX_AUDIT_PAGE}, offset >= 0")
        where = where or AuditFilter()
        with self._read() as s:
            access.caller(s, by, "audit.read")
            rows = s.audit_page(where, limit, offset)
            total = s.count_audit_page(where)
        for r in rows:
            r["details"] = orjson.loads(r["details"])
        return {"entries": rows, "total": total}

    def audit_check(self, by: str) -> dict[str, Any]:
        """Walk the whole chain (audit.verify) for a staff member allowed to read it."""
        with self._read() as s:
            access.caller(s, by, "audit.read")
            verdict = audit.verify(s.audit_all())
        return {"ok": verdict.ok, "entries": verdict.entries,
                "first_broken": verdict.first_broken, "problem": verdict.problem}

    def overview(self, by: str) -> dict[str, Any]:
        """The archive at a glance: rows per table, open review work, audit length,
        laptops by risk, scheduled departures."""
        moment = self.clock.now()
        with self._read() as s:
            access.caller(s, by, "ops.read")
            risks = dict.fromkeys(RISKS, 0)
            for d in wipes.devices_as_seen(s, iso(moment), None, None):
                risks[device_risk(d, moment)[0]] += 1
            return {"counts": s.counts(), "audit_entries": s.count_audit(),
                    "quarantine_open": len(s.quarantined(None, True)),
                    "conflicts_open": len(s.conflicts(None, None, True)),
                    "devices_by_risk": risks,
                    "departures_scheduled": sum(1 for r in s.revocations() if not r["applied_at"])}

    # --- the fleet ---------------------------------------------------------------------

    def fleet(self, by: str) -> list[dict[str, Any]]:
        """Every laptop `by` may see (a manager: their team's), most at risk first."""
        moment = self.clock.now()
        with self._read() as s:
            who = access.caller(s, by, "fleet.read")
            team = _scope_reps(s, who)
            if who is not None and who.role == StaffRole.manager and not team:
                return []
            rows = [fleet_row(d, moment) for d in wipes.devices_as_seen(s, iso(moment), None, None)
                    if _in_scope(d["rep_id"], team)]
        # Within a rank, older unsynced work first (it has waited longest to be lost),
        # then the more of the offline window used.
        return sorted(rows, key=lambda r: (RISKS.index(r["risk"]), -(r["unsynced_age_s"] or 0.0),
                                           -r["window_used"], r["rep_name"], r["id"]))


__all__ = ["OpsMethods", "device_risk", "enroll_command", "fleet_row", "qr_svg"]
