"""The archive's part for daily visit plans (每日拜访计划) and the daily and weekly reports.

Who may: `plan.review` (list, show, approve, return), `report.read`, and
`report.export` for CSV (admins, and managers for their own team; audited). `by`
names the staff account acting (CLI `--by USER`, the API's token); on the read calls `by=None` is the server's
own admin at the console (the CLI without `--by`), who needs no account.
"""

from __future__ import annotations

from typing import Any, Literal

from schema.enums import StaffRole

from ..archive.errors import ArchiveError, Forbidden, NotFound
from ..archive.store import Store
from . import access, audit, days, plans, reports
from .facade import ArchiveBase, rep_of

ReportKind = Literal["daily", "weekly"]


def _caller(s: Store, by: str | None, action: str, rep_id: str | None = None
            ) -> tuple[str, set[str] | None]:
    """(audit actor, the reps they see: None for all) of `by` doing `action`."""
    who = access.caller(s, by, action, rep_id)
    return access.actor(who), access.scope(s, who) if who else None


def _team_of(s: Store, manager: str) -> tuple[str, list[str]]:
    """A staff manager's name and the reps under them, transitively."""
    row = s.staff(manager)
    if row is None:
        raise NotFound("unknown_manager", f"no staff user {manager!r}: see "
                       "`fieldvault-server user list`")
    who = access.StaffMember.from_row(row)
    if who.role != StaffRole.manager:
        raise ArchiveError("not_a_manager", f"{who.name} is a {who.role.value}, not a manager "
                           "with a team")
    return who.name, sorted(access.team(s, who))


class PlanMethods(ArchiveBase):
    # --- plans ---------------------------------------------------------------------------

    def list_plans(self, by: str | None = None, manager: str | None = None,
                   status: str | None = None, day: str | None = None, rep: str | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """Plans newest day first: all, a manager's team's (`manager`), one rep's; a
        manager calling sees only their own team's."""
        with self._read() as s:
            rep_id = rep_of(s, rep)["id"] if rep else None
            _, seen = _caller(s, by, "plan.review", rep_id)
            reps: set[str] | None = {rep_id} if rep_id else None
            if manager is not None:
                name, members = _team_of(s, manager)
                team = set(members)
                # As the approvals and disputes listings: naming another team is refused,
                # not answered with an empty list that reads as "nothing to review".
                if seen is not None and not team <= seen:
                    raise Forbidden("outside_team", f"{name}'s team is not within yours")
                reps = team if reps is None else reps & team
            if seen is not None:
                reps = seen if reps is None else reps & seen
            return plans.listing(s, sorted(reps) if reps is not None else None, status, day,
                                 limit)

    def show_plan(self, plan_id: str | None = None, by: str | None = None,
                  rep: str | None = None, day: str | None = None) -> dict[str, Any]:
        """One plan (by id, or by rep and day) with the plan against actual visits."""
        with self._read() as s:
            if plan_id is None:
                if not (rep and day):
                    raise ArchiveError("plan_required", "name a plan: its id, or --rep and --date")
                days.parse_day(day)
                plan_id = plans.plan_id(rep_of(s, rep)["id"], day)
            row = plans.plan_of(s, plan_id)
            _caller(s, by, "plan.review", row["rep_id"])
            return plans.detail(s, self.clock.now(), row)

    def approve_plan(self, plan_id: str, by: str, comment: str = "") -> dict[str, Any]:
        with self._write() as s:
            return plans.review(s, self.now(), access.staff_member(s, by), plan_id, True, comment)

    def return_plan(self, plan_id: str, by: str, comment: str) -> dict[str, Any]:
        with self._write() as s:
            return plans.review(s, self.now(), access.staff_member(s, by), plan_id, False,
                                comment)

    # --- reports -------------------------------------------------------------------------

    def daily_report(self, rep: str, day: str, by: str | None = None) -> dict[str, Any]:
        """A rep's daily report (每日销售报告) for a company day."""
        with self._read() as s:
            return self._daily(s, rep, day, by, "report.read")[1]

    def weekly_report(self, team: str, week: str, by: str | None = None) -> dict[str, Any]:
        """A manager's team's weekly progress for an ISO week (YYYY-Www)."""
        with self._read() as s:
            return self._weekly(s, team, week, by, "report.read")[1]

    def export_report(self, kind: ReportKind, subject: str, period: str,
                      by: str | None = None) -> tuple[str, int]:
        """The report as CSV text (UTF-8 with a BOM) and its number of rows. Exports
        (`report.export`: admins, managers for their own team) are each in the audit
        chain with their row count.
        The report is read outside the serial lock (pushes do not wait for it); the
        export is then checked again and recorded before anything is handed out."""
        with self._read() as s:
            if kind == "daily":
                subject_id, report = self._daily(s, subject, period, by, "report.export")
                columns, rows = reports.daily_rows(report)
            elif kind == "weekly":
                subject_id, report = self._weekly(s, subject, period, by, "report.export")
                columns, rows = reports.weekly_rows(report)
            else:
                raise ArchiveError("invalid_report", "a report is daily or weekly")
        with self._write() as s:
            actor, _ = _caller(s, by, "report.export", subject_id if kind == "daily" else None)
            audit.append(s, self.now(), actor, "export.report", subject_id,
                         {"report": kind, "period": period, "count": len(rows)})
        return reports.to_csv(columns, rows), len(rows)

    def _daily(self, s: Store, rep: str, day: str, by: str | None,
               action: str) -> tuple[str, dict[str, Any]]:
        row = rep_of(s, rep)
        _caller(s, by, action, row["id"])
        return row["id"], reports.daily(s, self.clock.now(), row, days.parse_day(day))

    def _weekly(self, s: Store, team: str, week: str, by: str | None,
                action: str) -> tuple[str, dict[str, Any]]:
        name, reps = _team_of(s, team)
        _, seen = _caller(s, by, action)
        if seen is not None and not set(reps) <= seen:
            raise Forbidden("outside_team", f"{name}'s team is not within yours")
        return name, reports.weekly(s, self.clock.now(), name, reps, days.parse_week(week))


__all__ = ["PlanMethods"]
