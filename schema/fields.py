"""Which card and visit fields a rep may edit: plain names, importable without
pydantic (the CLIs build their help from them at start-up)."""

from __future__ import annotations

# Fields a rep or the office may edit; ownership and card number are the server's.
CUSTOMER_EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "decision_maker",
    "grade",
    "address",
    "area",  # 区域: district or territory, what plans and the pool are browsed by
    "phone",
    "industry",
    "size",
    "needs",
    "financial_status",
    "business_status",
    "purchasing_status",
    "credit_status",
    "external_relations",
    "business_contact",
    "notes",
)

# Fields the author may correct before approval.
VISIT_EDITABLE_FIELDS: tuple[str, ...] = (
    "planned",
    "started_at",
    "ended_at",
    "location",
    "purpose",
    "summary",
    "outcome",
    "feedback",
    "competitors",
    "next_at",
    "next_place",
    "next_content",
    "status",
)

# A pull page in rows (`GET /v1/pull?shape=rows`, issue 10): each card and visit is a
# JSON array of these columns in this order (the agent's vault columns, so a page goes
# into its tables as it arrives), booleans as 0/1. Arrays instead of objects: the keys
# were ~40% of a page's bytes, and building and parsing an object per record was most
# of the serialising on both sides.
PULL_CUSTOMER_ROW: tuple[str, ...] = (
    "id", "rev", "card_no", *CUSTOMER_EDITABLE_FIELDS, "created_by", "created_at",
    "owner_rep_id", "owned_since", "ownership_source", "last_served_at", "updated_at", "locked",
)
PULL_VISIT_ROW: tuple[str, ...] = (
    "id", "rev", "customer_id", "rep_id", "planned", "started_at", "ended_at", "location",
    "purpose", "summary", "outcome", "feedback", "competitors", "next_at", "next_place",
    "next_content", "status", "void_reason", "created_at", "updated_at", "review_comment",
    "reviewed_by", "reviewed_at", "callback", "callback_note",
)
