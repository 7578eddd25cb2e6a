"""The archive's part for visit review (拜访记录审核), call-back verification (电话回访),
quarantine and conflict review.

Every method is one transaction. `by` is the staff member acting (name or id): checked
with rules/access.authorize inside the transaction and named in the audit chain. A
listing's `by=None` is the archive's operator (a CLI run without --by, on the archive
file itself); the staff API always passes the caller.
"""

from __future__ import annotations

from typing import Any

from schema.enums import VisitStatus

from . import access, quarantine, review, verification
from .facade import ArchiveBase


class ReviewMethods(ArchiveBase):
    # --- visit review ----------------------------------------------------------------

    def approve_visit(self, visit_id: str, by: str, comment: str = "") -> dict[str, Any]:
        """Approve a submitted visit: read-only for its author from now on. Conflict
        `not_submitted` for a visit in any other state."""
        with self._write() as s:
            return review.decide(s, self.now(), by, visit_id, VisitStatus.approved, comment)

    def return_visit(self, visit_id: str, by: str, comment: str) -> dict[str, Any]:
        """Return a submitted visit to its author with a comment (1-1000 characters):
        their laptop pulls it, they correct it, and it is submitted again."""
        with self._write() as s:
            return review.decide(s, self.now(), by, visit_id, VisitStatus.returned, comment)

    def approvals(self, by: str | None = None, manager: str | None = None,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """Submitted visits waiting for review, oldest first (a manager: their team;
        `manager`: that manager's team)."""
        with self._read() as s:
            who = access.caller(s, by, "visit.review")
            return s.visits_to_review(review.team_root(s, who, manager), limit)

    def staff_visit(self, visit_id: str, by: str | None = None) -> dict[str, Any]:
        """One visit with its names and every revision, for a reviewer."""
        with self._read() as s:
            return review.visit_with_history(s, by, visit_id)

    # --- call-back verification --------------------------------------------------------

    def callback_queue(self, by: str | None = None, limit: int | None = None
                       ) -> list[dict[str, Any]]:
        with self._read() as s:
            return verification.queue(s, by, limit)

    def record_callback(self, visit_id: str, result: str, note: str, by: str) -> dict[str, Any]:
        """verified | disputed (a note required); Conflict `already_called` when the visit
        was called already, `not_picked` when the policy did not pick it."""
        with self._write() as s:
            return verification.record(s, self.now(), by, visit_id, result, note)

    def disputes(self, by: str | None = None, manager: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return verification.disputes(s, by, manager, limit)

    def callback_figures(self, by: str | None = None, rep: str | None = None) -> dict[str, Any]:
        with self._read() as s:
            return verification.figures(s, by, rep)

    def callback_policy(self, by: str | None = None) -> dict[str, int]:
        with self._read() as s:
            return verification.policy(s, by)

    def set_callback_policy(self, changes: dict[str, int], by: str | None = None
                            ) -> dict[str, int]:
        with self._write() as s:
            return verification.set_policy(s, self.now(), by, changes)

    # --- quarantine and conflicts ---------------------------------------------------------

    def held_ops(self, by: str | None = None, open_only: bool = False,
                 limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return quarantine.listing(s, by, open_only, limit)

    def accept_quarantined(self, held_id: int, by: str) -> dict[str, Any]:
        """Apply a held op as if it had arrived in time; Conflict `already_decided`, or
        `cannot_apply` (nothing written) when the record it needs is missing."""
        with self._write() as s:
            return quarantine.accept(s, self.clock.now(), by, held_id)

    def reject_quarantined(self, held_id: int, by: str, reason: str) -> dict[str, Any]:
        with self._write() as s:
            return quarantine.reject(s, self.now(), by, held_id, reason)

    def open_conflicts(self, by: str | None = None, open_only: bool = True,
                       limit: int | None = None) -> list[dict[str, Any]]:
        with self._read() as s:
            return quarantine.conflicts(s, by, open_only, limit)

    def resolve_conflict(self, conflict_id: int, keep: str, by: str) -> dict[str, Any]:
        """The kept value becomes a new card revision; Conflict `already_resolved`."""
        with self._write() as s:
            return quarantine.resolve_conflict(s, self.now(), by, conflict_id, keep)


__all__ = ["ReviewMethods"]
