"""Domain enums shared by agent and server."""

from enum import StrEnum


class VisitPurpose(StrEnum):
    new_development = "new_development"  # 开发新客户
    market_research = "market_research"  # 市场调研
    collection = "collection"  # 收款
    service = "service"  # 服务
    complaint = "complaint"  # 客诉处理
    order = "order"  # 订货
    other = "other"  # 其他


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"


class RepTier(StrEnum):
    senior = "senior"
    mid = "mid"
    junior = "junior"


class VisitStatus(StrEnum):
    """Review (拜访记录审核): submitted -> approved, or returned with the manager's
    comment -> the author edits -> submitted again. Call-back verification is a
    separate dimension (CallbackStatus), not a status."""

    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    returned = "returned"
    void = "void"


class CallbackStatus(StrEnum):
    """Call-back verification (电话回访) of a visit picked by the policy."""

    pending = "pending"
    verified = "verified"
    disputed = "disputed"


class StaffRole(StrEnum):
    admin = "admin"
    manager = "manager"  # 销售经理: acts on the reps under them, transitively
    verifier = "verifier"  # 电话回访: the office call-back team
    hr = "hr"  # 人力资源


class PlanStatus(StrEnum):
    """A daily visit plan (每日拜访计划): the rep submits, the manager approves or
    returns it with a comment; a returned plan may be submitted again."""

    submitted = "submitted"
    approved = "approved"
    returned = "returned"


class OwnershipSource(StrEnum):
    assigned = "assigned"
    developed = "developed"  # 谁开发谁服务: the rep created the card
    claimed = "claimed"  # taken from the pool (公海)
    pool = "pool"  # nobody owns it


class OpKind(StrEnum):
    customer_create = "customer.create"
    customer_update = "customer.update"
    visit_create = "visit.create"
    visit_update = "visit.update"
    visit_void = "visit.void"
    plan_submit = "plan.submit"


class OpStatus(StrEnum):
    accepted = "accepted"
    merged = "merged"  # applied on top of newer server changes, no field clash
    conflict = "conflict"  # some fields kept the server value; rep values recorded
    quarantined = "quarantined"  # kept on the server for review, not merged
    rejected = "rejected"  # refused with a reason; stays on the device
    # Stored by the archive, its rules not applied yet (a deferred batch, see
    # server/rules/received.py): the verdict comes later (POST /v1/push/verdicts).
    received = "received"


class ChangeKind(StrEnum):
    customer = "customer"
    visit = "visit"
    evict = "evict"  # the customer left the rep's scope: drop it and its visits
    plan = "plan"  # one of the rep's daily plans (its review state changed)


VISIT_TRANSITIONS: dict[VisitStatus, frozenset[VisitStatus]] = {
    VisitStatus.draft: frozenset({VisitStatus.submitted, VisitStatus.void}),
    VisitStatus.submitted: frozenset({VisitStatus.approved, VisitStatus.returned, VisitStatus.void}),
    VisitStatus.returned: frozenset({VisitStatus.submitted, VisitStatus.void}),
    # Read-only for the rep; only the office may still void an approved visit.
    VisitStatus.approved: frozenset({VisitStatus.void}),
    VisitStatus.void: frozenset(),
}


def can_transition(old: VisitStatus, new: VisitStatus) -> bool:
    """Whether a visit may move from `old` to `new` status (same status is a no-op)."""
    return old == new or new in VISIT_TRANSITIONS[old]
