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
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    verified = "verified"
    disputed = "disputed"
    void = "void"


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


class OpStatus(StrEnum):
    accepted = "accepted"
    merged = "merged"  # applied on top of newer server changes, no field clash
    conflict = "conflict"  # some fields kept the server value; rep values recorded
    quarantined = "quarantined"  # kept on the server for review, not merged
    rejected = "rejected"  # refused with a reason; stays on the device


class ChangeKind(StrEnum):
    customer = "customer"
    visit = "visit"
    evict = "evict"  # the customer left the rep's scope: drop it and its visits


VISIT_TRANSITIONS: dict[VisitStatus, frozenset[VisitStatus]] = {
    VisitStatus.draft: frozenset({VisitStatus.submitted, VisitStatus.void}),
    VisitStatus.submitted: frozenset({VisitStatus.approved, VisitStatus.void}),
    VisitStatus.approved: frozenset({VisitStatus.verified, VisitStatus.disputed, VisitStatus.void}),
    VisitStatus.verified: frozenset({VisitStatus.void}),
    VisitStatus.disputed: frozenset({VisitStatus.verified, VisitStatus.void}),
    VisitStatus.void: frozenset(),
}


def can_transition(old: VisitStatus, new: VisitStatus) -> bool:
    """Whether a visit may move from `old` to `new` status (same status is a no-op)."""
    return old == new or new in VISIT_TRANSITIONS[old]
