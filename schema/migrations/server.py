"""Server archive migrations. Append new migrations at the end; never edit an applied one."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("fieldvault-archive")

_CARD_COLUMNS = """
    name TEXT NOT NULL,
    decision_maker TEXT NOT NULL DEFAULT '',
    grade TEXT NOT NULL DEFAULT 'C' CHECK (grade IN ('A','B','C')),
    address TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    industry TEXT NOT NULL DEFAULT '',
    size TEXT NOT NULL DEFAULT '',
    needs TEXT NOT NULL DEFAULT '',
    financial_status TEXT NOT NULL DEFAULT '',
    business_status TEXT NOT NULL DEFAULT '',
    purchasing_status TEXT NOT NULL DEFAULT '',
    credit_status TEXT NOT NULL DEFAULT '',
    external_relations TEXT NOT NULL DEFAULT '',
    business_contact TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT ''
"""

VISIT_COLUMNS = """
    planned INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    location TEXT NOT NULL DEFAULT '',
    purpose TEXT NOT NULL,
    summary TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    feedback TEXT NOT NULL DEFAULT '',
    competitors TEXT NOT NULL DEFAULT '',
    next_at TEXT,
    next_place TEXT NOT NULL DEFAULT '',
    next_content TEXT NOT NULL DEFAULT ''
"""
CARD_COLUMNS = _CARD_COLUMNS


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE reps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    manager_id TEXT REFERENCES reps(id),
    tier TEXT NOT NULL DEFAULT 'mid' CHECK (tier IN ('senior','mid','junior')),
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX reps_name ON reps(name);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    rep_id TEXT NOT NULL REFERENCES reps(id),
    name TEXT NOT NULL DEFAULT '',
    sign_public_key BLOB NOT NULL,
    box_public_key BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    enrolled_at TEXT NOT NULL,
    last_seen_at TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_rep ON devices(rep_id);

CREATE TABLE enroll_codes (
    code_hash TEXT PRIMARY KEY,
    rep_id TEXT NOT NULL REFERENCES reps(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    device_id TEXT
);

CREATE TABLE nonces (
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (device_id, nonce)
) WITHOUT ROWID;
CREATE INDEX nonces_seen ON nonces(seen_at);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    card_no TEXT NOT NULL UNIQUE,
    {_CARD_COLUMNS},
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    owner_rep_id TEXT REFERENCES reps(id),
    owned_since TEXT,
    ownership_source TEXT NOT NULL,
    last_served_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX customers_owner ON customers(owner_rep_id);

CREATE TABLE customer_revisions (
    customer_id TEXT NOT NULL REFERENCES customers(id),
    rev INTEGER NOT NULL,
    server_seq INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    op_id TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (customer_id, rev)
) WITHOUT ROWID;

CREATE TABLE visits (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    rep_id TEXT NOT NULL REFERENCES reps(id),
    device_id TEXT,
    {VISIT_COLUMNS},
    status TEXT NOT NULL,
    void_reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX visits_customer ON visits(customer_id);
CREATE INDEX visits_rep ON visits(rep_id);

CREATE TABLE visit_revisions (
    visit_id TEXT NOT NULL REFERENCES visits(id),
    rev INTEGER NOT NULL,
    server_seq INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    op_id TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (visit_id, rev)
) WITHOUT ROWID;

CREATE TABLE ownership (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    from_rep_id TEXT,
    to_rep_id TEXT,
    source TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX ownership_customer ON ownership(customer_id, at);

-- The change feed: one row per change, addressed to the rep whose scope it
-- touches, so a pull is an index range scan proportional to that rep's changes.
CREATE TABLE feed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rep_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('customer','visit','grant','evict')),
    entity_id TEXT NOT NULL,
    customer_id TEXT NOT NULL
);
CREATE INDEX feed_rep_seq ON feed(rep_id, seq);

CREATE TABLE applied_ops (
    op_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    field TEXT NOT NULL,
    server_value TEXT,
    rep_value TEXT,
    base_rev INTEGER NOT NULL,
    rev INTEGER NOT NULL,
    rep_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    op_id TEXT NOT NULL,
    at TEXT NOT NULL,
    resolved_at TEXT
);

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    rep_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    reviewed_at TEXT
);

-- History is append-only: nothing a rep synced can be hard-deleted.
CREATE TRIGGER customers_no_delete BEFORE DELETE ON customers
BEGIN SELECT RAISE(ABORT, 'customers are never deleted; void them'); END;
CREATE TRIGGER visits_no_delete BEFORE DELETE ON visits
BEGIN SELECT RAISE(ABORT, 'visits are never deleted; void them'); END;
CREATE TRIGGER customer_revisions_append_only_u BEFORE UPDATE ON customer_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER customer_revisions_append_only_d BEFORE DELETE ON customer_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER visit_revisions_append_only_u BEFORE UPDATE ON visit_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER visit_revisions_append_only_d BEFORE DELETE ON visit_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER ownership_append_only_u BEFORE UPDATE ON ownership
BEGIN SELECT RAISE(ABORT, 'ownership history is append-only'); END;
CREATE TRIGGER ownership_append_only_d BEFORE DELETE ON ownership
BEGIN SELECT RAISE(ABORT, 'ownership history is append-only'); END;
CREATE TRIGGER quarantine_no_delete BEFORE DELETE ON quarantine
BEGIN SELECT RAISE(ABORT, 'quarantined records are kept for review'); END;
"""
    )


@migrations()
def m002_audit_log(db: Database) -> None:
    db.executescript(
        """
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
    )


@migrations()
def m003_revocation(db: Database) -> None:
    db.executescript(
        """
CREATE TABLE revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rep_id TEXT NOT NULL UNIQUE REFERENCES reps(id),
    reason TEXT NOT NULL,
    reassign_to TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    source TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    applied_at TEXT,
    reassigned TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE wipe_orders (
    order_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL UNIQUE REFERENCES devices(id),
    issued_at TEXT NOT NULL,
    receipt_at TEXT,
    receipt TEXT
);
ALTER TABLE devices ADD COLUMN revoked_at TEXT;
"""
    )


@migrations()
def m004_key_leases(db: Database) -> None:
    db.executescript(
        """
ALTER TABLE devices ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN lease_secret BLOB;
ALTER TABLE devices ADD COLUMN lease_prev_secret BLOB;
ALTER TABLE devices ADD COLUMN lease_issued_at TEXT;
ALTER TABLE devices ADD COLUMN block_at TEXT;
ALTER TABLE devices ADD COLUMN wipe_at TEXT;
INSERT OR IGNORE INTO meta(key, value) VALUES ('offline_block_hours', '72');
INSERT OR IGNORE INTO meta(key, value) VALUES ('offline_wipe_days', '30');
INSERT OR IGNORE INTO meta(key, value) VALUES ('require_pin', '0');
CREATE TABLE hr_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""
    )


@migrations()
def m005_unique_device_keys(db: Database) -> None:
    # One key pair, one device: a signature or a sealed lease must name exactly one device.
    db.executescript(
        """
CREATE UNIQUE INDEX devices_sign_public_key ON devices(sign_public_key);
CREATE UNIQUE INDEX devices_box_public_key ON devices(box_public_key);
"""
    )


# The company's rules (staff, review, call-back, the pool, plans), in one schema step.
M006_SHARED = """
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin','manager','verifier','hr')),
    rep_id TEXT REFERENCES reps(id),
    password_hash TEXT,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    disabled_at TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX staff_name ON staff(name);
CREATE TABLE staff_tokens (
    token_hash TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES staff(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX staff_tokens_staff ON staff_tokens(staff_id);

ALTER TABLE customers ADD COLUMN area TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE customers ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN phone_key TEXT NOT NULL DEFAULT '';
CREATE INDEX customers_name_key ON customers(name_key);
CREATE INDEX customers_phone_key ON customers(phone_key);

ALTER TABLE visits ADD COLUMN review_comment TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN reviewed_by TEXT;
ALTER TABLE visits ADD COLUMN reviewed_at TEXT;
ALTER TABLE visits ADD COLUMN callback TEXT CHECK (callback IN ('pending','verified','disputed'));
ALTER TABLE visits ADD COLUMN callback_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN callback_note TEXT NOT NULL DEFAULT '';
ALTER TABLE visits ADD COLUMN callback_by TEXT;
ALTER TABLE visits ADD COLUMN callback_at TEXT;
UPDATE visits SET callback = status, status = 'approved' WHERE status IN ('verified','disputed');
CREATE INDEX visits_status_rep ON visits(status, rep_id);
CREATE INDEX visits_callback ON visits(callback, started_at);
CREATE INDEX visits_rep_started ON visits(rep_id, started_at);

ALTER TABLE quarantine ADD COLUMN decision TEXT CHECK (decision IN ('accepted','rejected'));
ALTER TABLE quarantine ADD COLUMN decided_by TEXT;
ALTER TABLE quarantine ADD COLUMN decision_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE conflicts ADD COLUMN resolved_by TEXT;
ALTER TABLE conflicts ADD COLUMN resolution TEXT CHECK (resolution IN ('server','rep'));

CREATE TABLE pool_warnings (
    customer_id TEXT NOT NULL REFERENCES customers(id),
    rep_id TEXT NOT NULL,
    due_at TEXT NOT NULL,
    warned_at TEXT NOT NULL,
    PRIMARY KEY (customer_id, rep_id, due_at)
);

CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    rep_id TEXT NOT NULL REFERENCES reps(id),
    day TEXT NOT NULL,
    rev INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('submitted','approved','returned')),
    items TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    submitted_at TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_at TEXT
);
CREATE UNIQUE INDEX plans_rep_day ON plans(rep_id, day);
CREATE INDEX plans_status_day ON plans(status, day);
CREATE TABLE plan_revisions (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    rev INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (plan_id, rev)
);
"""


@migrations()
def m006_company_rules(db: Database) -> None:
    db.executescript(
        M006_SHARED
        + """
CREATE TRIGGER plan_revisions_append_only_u BEFORE UPDATE ON plan_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER plan_revisions_append_only_d BEFORE DELETE ON plan_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER plans_no_delete BEFORE DELETE ON plans
BEGIN SELECT RAISE(ABORT, 'plans are never deleted'); END;

-- The feed learns a fifth kind ('plan'): SQLite cannot change a CHECK in place.
CREATE TABLE feed_m006 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rep_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('customer','visit','grant','evict','plan')),
    entity_id TEXT NOT NULL,
    customer_id TEXT NOT NULL
);
INSERT INTO feed_m006 (seq, rep_id, kind, entity_id, customer_id)
    SELECT seq, rep_id, kind, entity_id, customer_id FROM feed;
DROP TABLE feed;
ALTER TABLE feed_m006 RENAME TO feed;
CREATE INDEX feed_rep_seq ON feed(rep_id, seq);
"""
    )


# Attachments (photos, signed forms) and visit evidence. The bytes live in a blob folder
# beside the archive (server/blobs.py), not in a row: rows say what is there and which
# visit revision names it. visit_evidence keeps each revision's device signature and the
# laptop's time, so the archive shows which laptop recorded what and when.
M008_ATTACHMENTS = """
CREATE TABLE attachments (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    first_device_id TEXT NOT NULL
);
CREATE TABLE visit_attachments (
    visit_id TEXT NOT NULL REFERENCES visits(id),
    sha256 TEXT NOT NULL REFERENCES attachments(sha256),
    name TEXT NOT NULL,
    rev INTEGER NOT NULL,
    PRIMARY KEY (visit_id, sha256)
);
CREATE INDEX visit_attachments_sha ON visit_attachments(sha256);
CREATE TABLE visit_evidence (
    visit_id TEXT NOT NULL REFERENCES visits(id),
    rev INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    device_time TEXT NOT NULL,
    signature TEXT NOT NULL,
    attachments TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (visit_id, rev)
);
"""

# The staff console's sign-in sessions (only the SHA-256 of each cookie is kept), and
# the indexes its paged lists walk: customers by owner then card number (a keyset page
# of a team's cards), visits by status then start (the approval queue, oldest first),
# call-backs by who made them (a verifier's own figures), disputes newest first, and
# two covering indexes for the team dashboard's counts (disputed visits per rep; visits
# per rep and day), which would otherwise read a table row for each of tens of
# thousands of visits.
M009_CONSOLE = """
CREATE TABLE console_sessions (
    token_digest TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    staff_id TEXT NOT NULL REFERENCES staff(id),
    csrf_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX console_sessions_staff ON console_sessions(staff_id);
CREATE INDEX customers_owner_card ON customers(owner_rep_id, card_no);
CREATE INDEX visits_status_started ON visits(status, started_at);
CREATE INDEX visits_callback_by ON visits(callback_by, callback_at, callback);
CREATE INDEX visits_callback_rep ON visits(callback, rep_id, status);
CREATE INDEX visits_callback_at ON visits(callback, callback_at);
CREATE INDEX visits_rep_day ON visits(rep_id, started_at, status);
"""


@migrations()
def m008_attachments(db: Database) -> None:
    db.executescript(M008_ATTACHMENTS)


@migrations()
def m009_console(db: Database) -> None:
    db.executescript(M009_CONSOLE)


# What a laptop reported at its last check-in about the work it has not synced yet
# (null: an agent too old to report it, or no check-in since this migration).
M010_CHECKIN_BACKLOG = """
ALTER TABLE devices ADD COLUMN unsynced_ops INTEGER;
ALTER TABLE devices ADD COLUMN oldest_unsynced_at TEXT;
"""


@migrations()
def m010_checkin_backlog(db: Database) -> None:
    db.executescript(M010_CHECKIN_BACKLOG)


# Sync speed (issue 10).
# - feed.origin: the device whose pushed operation wrote the row. A device is not sent
#   its own writes back: the push result carries each accepted record as the archive
#   holds it (schema.models.OpResult.record), so a pull skips those rows.
# - visit_evidence: the signed content and kind, so the signature can be checked after
#   the push (rules/evidence_check.py) instead of inside it (Ed25519 verification cost
#   ~0.2 ms a revision, more than everything else a pushed visit costs). `verified`:
#   NULL not checked yet, 1 verifies, 0 does not. Rows stored before this migration
#   were verified before they were stored.
# - visits_rep and visits_rep_started are prefixes of visits_rep_day (rep_id,
#   started_at, status): two B-trees every visit write paid for nothing.
# - The call-back indexes hold only visits picked for a call (callback set; callback_by
#   once called): every query on them names a callback value or caller, which implies
#   the partial index's condition on SQLite and PostgreSQL alike, and the ~80% of
#   visits never picked no longer pay four index entries each.
M011_SYNC_SPEED = """
ALTER TABLE feed ADD COLUMN origin TEXT;
ALTER TABLE visit_evidence ADD COLUMN kind TEXT;
ALTER TABLE visit_evidence ADD COLUMN content TEXT;
ALTER TABLE visit_evidence ADD COLUMN verified INTEGER;
UPDATE visit_evidence SET verified = 1;
CREATE INDEX visit_evidence_unchecked ON visit_evidence(received_at) WHERE verified IS NULL;
DROP INDEX IF EXISTS visits_rep;
DROP INDEX IF EXISTS visits_rep_started;
DROP INDEX visits_callback;
CREATE INDEX visits_callback ON visits(callback, started_at) WHERE callback IS NOT NULL;
DROP INDEX visits_callback_rep;
CREATE INDEX visits_callback_rep ON visits(callback, rep_id, status) WHERE callback IS NOT NULL;
DROP INDEX visits_callback_at;
CREATE INDEX visits_callback_at ON visits(callback, callback_at) WHERE callback IS NOT NULL;
DROP INDEX visits_callback_by;
CREATE INDEX visits_callback_by ON visits(callback_by, callback_at, callback)
    WHERE callback_by IS NOT NULL;
"""


@migrations()
def m011_sync_speed(db: Database) -> None:
    db.executescript(M011_SYNC_SPEED)


# Received push batches (issue 10): a laptop with a long backlog asks the archive to
# store each batch and answer at once; the rules run after the answer, oldest batch
# first (server/rules/received.py), and the verdicts go back on request. A row is the
# batch's request body as it arrived (parsed and checked before it was stored), and
# leaves in the transaction that applies it.
M012_PUSH_INBOX = """
CREATE TABLE push_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id),
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    op_count INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    -- Last: a row's other columns are read without walking the body's overflow pages.
    body TEXT NOT NULL
);
CREATE INDEX push_inbox_device ON push_inbox(device_id, first_seq);
"""


@migrations()
def m012_push_inbox(db: Database) -> None:
    db.executescript(M012_PUSH_INBOX)
