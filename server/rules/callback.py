"""Call-back verification (电话回访): which visits the office calls, and what a call found.

A visit is picked when it is saved as submitted and was not picked before (so a
resubmitted visit keeps an earlier selection): every visit whose purpose is a
collection or an order; every visit of a rep whose call-backs were disputed too
often; else a sample of each rep's visits, drawn from the visit's id, so the same
visit is always picked or never (reproducible, and a rep cannot re-roll it).
"""

from __future__ import annotations

import hashlib
from typing import Any

from schema.enums import CallbackStatus, VisitPurpose, VisitStatus

from ..archive.store import Store
from . import policies
from .policies import CallbackPolicy

ALWAYS_CALLED = frozenset({VisitPurpose.collection.value, VisitPurpose.order.value})

# Why a visit was picked (visits.callback_reason).
PURPOSE, DISPUTE_RATE, SAMPLE = "purpose", "rep_dispute_rate", "sample"


def bucket(visit_id: str) -> int:
    """0..99, fixed for a visit id: the visit's place in the sample."""
    return int.from_bytes(hashlib.sha256(visit_id.encode()).digest()[:8], "big") % 100


def disputes_too_often(store: Store, rep_id: str, policy: CallbackPolicy) -> bool:
    """Whether the rep's dispute rate (disputed over called) is above the threshold,
    once they have had enough calls for the rate to mean something."""
    counts = store.callback_counts(rep_id=rep_id)
    if not counts:
        return False
    disputed, called = counts[0]["disputed"], counts[0]["verified"] + counts[0]["disputed"]
    return called >= policy.dispute_min_calls and disputed * 100 > policy.dispute_threshold_pct * called


class Picker:
    """The call-back choice for one write (a push batch, a review): the policy and each
    rep's dispute standing are read once, not once per visit. Neither can change while
    the write runs: saving visits only adds `pending` picks, never a verified or disputed
    call, and the policy is set by its own command. Reading the counts per visit made a
    large push quadratic (an aggregate over the rep's visits for each one saved)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._policy: CallbackPolicy | None = None
        self._disputes: dict[str, bool] = {}

    @property
    def policy(self) -> CallbackPolicy:
        if self._policy is None:
            self._policy = policies.read(self.store, CallbackPolicy)
        return self._policy

    def reason(self, visit: dict[str, Any]) -> str | None:
        """Why the policy picks this visit for a call-back, or None."""
        if visit["purpose"] in ALWAYS_CALLED:
            return PURPOSE
        rep = visit["rep_id"]
        if rep not in self._disputes:
            self._disputes[rep] = disputes_too_often(self.store, rep, self.policy)
        if self._disputes[rep]:
            return DISPUTE_RATE
        if bucket(visit["id"]) < self.policy.sample_pct:
            return SAMPLE
        return None

    def select(self, visit: dict[str, Any]) -> None:
        """Mark `visit` (a row about to be saved) for call-back when the policy picks it."""
        if visit.get("status") != VisitStatus.submitted or visit.get("callback"):
            return
        reason = self.reason(visit)
        if reason:
            visit.update(callback=CallbackStatus.pending.value, callback_reason=reason)


def select(store: Store, visit: dict[str, Any]) -> None:
    """Mark `visit` (a row about to be saved) for call-back when the policy picks it."""
    Picker(store).select(visit)
