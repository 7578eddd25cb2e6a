"""Agent (SQLCipher) migrations. Append new migrations at the end; never edit an applied one."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .server import CARD_COLUMNS, VISIT_COLUMNS

migrations = Migrations("fieldvault-agent")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        f"""
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL DEFAULT 0,   -- archive revision this row is based on; 0 = never synced
    card_no TEXT NOT NULL DEFAULT '',
    {CARD_COLUMNS},
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    owner_rep_id TEXT,
    owned_since TEXT,
    ownership_source TEXT NOT NULL DEFAULT 'assigned',
    last_served_at TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE visits (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL DEFAULT 0,
    customer_id TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    {VISIT_COLUMNS},
    status TEXT NOT NULL,
    void_reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX visits_customer ON visits(customer_id);

-- Local operations waiting to go up, in device sequence order. Rows leave
-- only when the server has answered for them; rejected ones stay, visible.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    base_rev INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending','rejected','quarantined')),
    reason TEXT
);
CREATE INDEX outbox_state ON outbox(state, seq);
"""
    )
    db.table("customers").enable_fts(
        ["name", "card_no", "decision_maker", "address", "needs", "business_contact", "notes"],
        create_triggers=True,
        tokenize="trigram",
    )
    db.table("visits").enable_fts(
        ["summary", "outcome", "feedback", "competitors", "next_content"],
        create_triggers=True,
        tokenize="trigram",
    )
