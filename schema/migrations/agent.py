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


def _fts_update_trigger(db: Database, table: str, columns: list[str]) -> None:
    """Re-index a row in `table`_fts only when one of its indexed columns changed.

    sqlite-utils' trigger fires on every UPDATE, so bumping `rev` after a push or
    `last_served_at` after a visit re-tokenized the whole row (trigram FTS is the
    most expensive part of a write). Same index contents, far fewer rewrites.
    """
    cols = ", ".join(f'"{c}"' for c in columns)
    old = ", ".join(f'old."{c}"' for c in columns)
    new = ", ".join(f'new."{c}"' for c in columns)
    changed = " OR ".join(f'old."{c}" IS NOT new."{c}"' for c in columns)
    db.executescript(
        f"""
DROP TRIGGER IF EXISTS "{table}_au";
CREATE TRIGGER "{table}_au" AFTER UPDATE OF {cols} ON "{table}"
WHEN {changed}
BEGIN
  INSERT INTO "{table}_fts" ("{table}_fts", rowid, {cols}) VALUES('delete', old.rowid, {old});
  INSERT INTO "{table}_fts" (rowid, {cols}) VALUES (new.rowid, {new});
END;
"""
    )


@migrations()
def m002_fts_update_only_on_text_change(db: Database) -> None:
    _fts_update_trigger(db, "customers", ["name", "card_no", "decision_maker", "address", "needs",
                                          "business_contact", "notes"])
    _fts_update_trigger(db, "visits", ["summary", "outcome", "feedback", "competitors",
                                       "next_content"])
    # get_customer looks a card up by number as well as by id.
    db.execute("CREATE INDEX IF NOT EXISTS customers_card_no ON customers(card_no)")


@migrations()
def m003_company_rules(db: Database) -> None:
    # What the archive now says about a card and a visit: the card's area and lock,
    # the visit's review and call-back state (shown to the rep, never edited here).
    db.executescript(
        """
ALTER TABLE customers ADD COLUMN area TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visits ADD COLUMN review_comment TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN reviewed_by TEXT;
ALTER TABLE visits ADD COLUMN reviewed_at TEXT;
ALTER TABLE visits ADD COLUMN callback TEXT;
ALTER TABLE visits ADD COLUMN callback_note TEXT NOT NULL DEFAULT '';
UPDATE visits SET callback = status, status = 'approved' WHERE status IN ('verified','disputed');
"""
    )


@migrations()
def m004_daily_plans(db: Database) -> None:
    # Daily visit plans (每日拜访计划), made offline: the rep's working copy of each
    # day, and the plan as submitted (the archive's copy from the last pull, or the
    # rep's submission still on its way up, rev 0 until the archive has it).
    db.executescript(
        """
CREATE TABLE plan_items (
    day TEXT NOT NULL,            -- YYYY-MM-DD
    customer_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    time TEXT,                    -- HH:MM, or NULL: any time of the day
    added_at TEXT NOT NULL,
    PRIMARY KEY (day, customer_id)
);

CREATE TABLE plans (
    day TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    rev INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    items TEXT NOT NULL,          -- JSON: the PlanItem list as submitted
    comment TEXT NOT NULL DEFAULT '',
    submitted_at TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_at TEXT
);

-- `status` lists what needs attention every time it runs: the visits the manager
-- returned, and the cards near their pool deadline, found by when they were last
-- served and (only for those) their latest visit, read off the index in one step.
CREATE INDEX visits_returned ON visits(rep_id) WHERE status = 'returned';
CREATE INDEX customers_served ON customers(last_served_at);
DROP INDEX visits_customer;
CREATE INDEX visits_customer_started ON visits(customer_id, started_at);
"""
    )


# While this state key is set, the FTS indexes lag their tables on purpose: a fresh
# vault's first sync inserts without tokenizing, then builds both indexes once
# (agent/store.py). Searches meanwhile scan the tables exactly, so none misses a record.
FTS_PENDING = "fts_pending"
_FTS_COLUMNS = {
    "customers": ["name", "card_no", "decision_maker", "address", "needs", "business_contact",
                  "notes"],
    "visits": ["summary", "outcome", "feedback", "competitors", "next_content"],
}


@migrations()
def m005_fts_deferrable(db: Database) -> None:
    # The same three triggers per table, each gated by FTS_PENDING. Tokenizing was ~80%
    # of a first sync's local cost; building the index once at the end costs far less
    # than keeping it up to date row by row.
    ready = f"NOT EXISTS (SELECT 1 FROM state WHERE key = '{FTS_PENDING}')"
    for table, columns in _FTS_COLUMNS.items():
        cols = ", ".join(f'"{c}"' for c in columns)
        old = ", ".join(f'old."{c}"' for c in columns)
        new = ", ".join(f'new."{c}"' for c in columns)
        changed = " OR ".join(f'old."{c}" IS NOT new."{c}"' for c in columns)
        add = f'INSERT INTO "{table}_fts" (rowid, {cols}) VALUES (new.rowid, {new});'
        drop = (f'INSERT INTO "{table}_fts" ("{table}_fts", rowid, {cols}) '
                f"VALUES('delete', old.rowid, {old});")
        db.executescript(
            f"""
DROP TRIGGER IF EXISTS "{table}_ai";
DROP TRIGGER IF EXISTS "{table}_ad";
DROP TRIGGER IF EXISTS "{table}_au";
CREATE TRIGGER "{table}_ai" AFTER INSERT ON "{table}" WHEN {ready}
BEGIN {add} END;
CREATE TRIGGER "{table}_ad" AFTER DELETE ON "{table}" WHEN {ready}
BEGIN {drop} END;
CREATE TRIGGER "{table}_au" AFTER UPDATE OF {cols} ON "{table}"
WHEN {ready} AND ({changed})
BEGIN {drop} {add} END;
"""
        )
@migrations()
def m006_attachments(db: Database) -> None:
    # Photos and signed forms, inside the vault (encrypted at rest with it, wiped with
    # it): one row per distinct content (sha256), its bytes in `data` (NULL for one a
    # pulled visit names but not yet downloaded). `attached`: it belongs to a visit, so
    # it goes when no visit names it any more (eviction); an inbox file not yet
    # attached (attached = 0) stays until the rep attaches or discards it.
    # `uploaded_at`: the server has all of it (a visit naming it may then go up).
    # outbox.evidence: the device's signature over a visit op (schema/evidence.py).
    db.executescript(
        """
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attached INTEGER NOT NULL DEFAULT 0,
    uploaded_at TEXT,
    data BLOB
);
CREATE TABLE visit_attachments (
    visit_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (visit_id, sha256)
);
CREATE INDEX visit_attachments_sha ON visit_attachments(sha256);
ALTER TABLE outbox ADD COLUMN evidence TEXT;
"""
    )


@migrations()
def m007_conflicts(db: Database) -> None:
    # Conflicts the server reported: fields of a card where the archive kept the
    # office's value over the rep's. The op leaves the outbox (the rest of it was
    # applied), so the rep's values of those fields are kept here until dismissed,
    # and the rep sees that what they typed was not kept.
    db.executescript(
        """
CREATE TABLE conflicts (
    op_id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    fields TEXT NOT NULL,
    mine TEXT NOT NULL,
    at TEXT NOT NULL,
    dismissed_at TEXT
);
CREATE INDEX conflicts_open ON conflicts(at) WHERE dismissed_at IS NULL;
"""
    )


@migrations()
def m008_outbox_edits(db: Database) -> None:
    # Recording a push's answers re-applies the rep's later pending edits of the same
    # records on top (Store._reapply_pending): found by entity through this index, not
    # by reading every pending op for each batch (quadratic in a 100k-visit outbox).
    # Edits only: an outbox of new visits leaves it empty, and each lookup is free.
    db.executescript(
        "CREATE INDEX IF NOT EXISTS outbox_edits ON outbox(entity_id, seq) "
        "WHERE kind IN ('customer.update', 'visit.update', 'visit.void');")
