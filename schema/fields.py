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
