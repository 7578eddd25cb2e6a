"""Server archive migrations for PostgreSQL: the same schema versions as `server.py` (SQLite).

Same migration names, tables, columns (in the same order), defaults and CHECKs, so
the archive's portable SQL runs unchanged and rows come back with the same Python
types on both engines: TEXT -> str, BIGINT (SQLite INTEGER) -> int, BYTEA (BLOB) ->
bytes, DOUBLE PRECISION (REAL) -> float. Every TEXT column is `COLLATE "C"`: SQLite
compares text byte by byte, and a database created with a language collation (the
usual default) would sort and compare names, ids and ISO timestamps differently.

The history rules are enforced by the database, as SQLite's triggers do: a
refusing trigger on DELETE (and UPDATE where SQLite has one), plus BEFORE TRUNCATE,
which SQLite does not have and PostgreSQL would otherwise let through.

Applied names are recorded in `fieldvault_migrations`. Append new migrations at the
end, in step with `server.py`; never edit an applied one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg

from .server import (
    CARD_COLUMNS,
    M006_SHARED,
    M008_ATTACHMENTS,
    M009_CONSOLE,
    M010_CHECKIN_BACKLOG,
    M011_SYNC_SPEED,
    M012_PUSH_INBOX,
    VISIT_COLUMNS,
)

# One fixed key for pg_advisory_xact_lock: two `init`s racing on one database
# (two hosts starting at once) apply each migration exactly once, one after the other.
MIGRATION_LOCK_KEY = 0x4656_6D69_6772_6174  # "FVmigrat"


class SchemaTooNew(Exception):
    """The database has migrations this code does not know: a newer server migrated it."""

    def __init__(self, unknown: list[str]) -> None:
        super().__init__(", ".join(unknown))
        self.unknown = unknown


def _pg(ddl: str) -> str:
    """Column blocks shared with the SQLite schema say INTEGER; here that is BIGINT (64-bit
    like SQLite's). Every TEXT compares bytewise, as SQLite's BINARY collation does."""
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', ddl)


# A trigger function that refuses the statement with the message the trigger names.
# 23001 restrict_violation: an integrity error, like SQLite's RAISE(ABORT) in a trigger.
_REFUSE = """
CREATE FUNCTION fieldvault_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation';
END
$$;
"""


def _refuse(table: str, events: str, message: str) -> str:
    """Row triggers for `events` (fired per row, as SQLite's), and one for TRUNCATE."""
    name = table + "_" + events.lower().replace(" or ", "_")
    return (
        f"CREATE TRIGGER {name}_refused BEFORE {events} ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION fieldvault_refuse('{message}');\n"
        f"CREATE TRIGGER {table}_truncate_refused BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION fieldvault_refuse('{message}');\n"
    )


M001_INITIAL = _pg(
    f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE reps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    manager_id TEXT REFERENCES reps(id),
    tier TEXT NOT NULL DEFAULT 'mid' CHECK (tier IN ('senior','mid','junior')),
    active BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX reps_name ON reps(name);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    rep_id TEXT NOT NULL REFERENCES reps(id),
    name TEXT NOT NULL DEFAULT '',
    sign_public_key BYTEA NOT NULL,
    box_public_key BYTEA NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    enrolled_at TEXT NOT NULL,
    last_seen_at TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0
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
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX nonces_seen ON nonces(seen_at);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    rev BIGINT NOT NULL,
    card_no TEXT NOT NULL UNIQUE,
    {CARD_COLUMNS},
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
    rev BIGINT NOT NULL,
    server_seq BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    op_id TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (customer_id, rev)
);

CREATE TABLE visits (
    id TEXT PRIMARY KEY,
    rev BIGINT NOT NULL,
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
    rev BIGINT NOT NULL,
    server_seq BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    author TEXT NOT NULL,
    device_id TEXT,
    op_id TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (visit_id, rev)
);

CREATE TABLE ownership (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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
-- seq comes from a sequence, which hands out numbers at INSERT time, not at commit:
-- writers that append here hold the engine's write lock, so numbers follow commit order.
CREATE TABLE feed (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    rep_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('customer','visit','grant','evict')),
    entity_id TEXT NOT NULL,
    customer_id TEXT NOT NULL
);
CREATE INDEX feed_rep_seq ON feed(rep_id, seq);

CREATE TABLE applied_ops (
    op_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    result TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE conflicts (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    field TEXT NOT NULL,
    server_value TEXT,
    rep_value TEXT,
    base_rev BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    rep_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    op_id TEXT NOT NULL,
    at TEXT NOT NULL,
    resolved_at TEXT
);

CREATE TABLE quarantine (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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
"""
) + (
    # History is append-only: nothing a rep synced can be hard-deleted.
    _REFUSE
    + _refuse("customers", "DELETE", "customers are never deleted; void them")
    + _refuse("visits", "DELETE", "visits are never deleted; void them")
    + _refuse("customer_revisions", "UPDATE OR DELETE", "revisions are append-only")
    + _refuse("visit_revisions", "UPDATE OR DELETE", "revisions are append-only")
    + _refuse("ownership", "UPDATE OR DELETE", "ownership history is append-only")
    + _refuse("quarantine", "DELETE", "quarantined records are kept for review")
)

M002_AUDIT_LOG = _pg(
    """
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""
) + _refuse("audit_log", "UPDATE OR DELETE", "the audit log is append-only")

M003_REVOCATION = _pg(
    """
CREATE TABLE revocations (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
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

M004_KEY_LEASES = _pg(
    """
ALTER TABLE devices ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN lease_secret BYTEA;
ALTER TABLE devices ADD COLUMN lease_prev_secret BYTEA;
ALTER TABLE devices ADD COLUMN lease_issued_at TEXT;
ALTER TABLE devices ADD COLUMN block_at TEXT;
ALTER TABLE devices ADD COLUMN wipe_at TEXT;
INSERT INTO meta(key, value) VALUES ('offline_block_hours', '72') ON CONFLICT DO NOTHING;
INSERT INTO meta(key, value) VALUES ('offline_wipe_days', '30') ON CONFLICT DO NOTHING;
INSERT INTO meta(key, value) VALUES ('require_pin', '0') ON CONFLICT DO NOTHING;
CREATE TABLE hr_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""
)

# One key pair, one device: a signature or a sealed lease must name exactly one device.
M005_UNIQUE_DEVICE_KEYS = """
CREATE UNIQUE INDEX devices_sign_public_key ON devices(sign_public_key);
CREATE UNIQUE INDEX devices_box_public_key ON devices(box_public_key);
"""

M006_COMPANY_RULES = (
    _pg(M006_SHARED)
    + _refuse("plan_revisions", "UPDATE OR DELETE", "revisions are append-only")
    + _refuse("plans", "DELETE", "plans are never deleted")
    + """
ALTER TABLE feed DROP CONSTRAINT feed_kind_check;
ALTER TABLE feed ADD CONSTRAINT feed_kind_check
    CHECK (kind IN ('customer','visit','grant','evict','plan'));
"""
)

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("m001_initial", M001_INITIAL),
    ("m002_audit_log", M002_AUDIT_LOG),
    ("m003_revocation", M003_REVOCATION),
    ("m004_key_leases", M004_KEY_LEASES),
    ("m005_unique_device_keys", M005_UNIQUE_DEVICE_KEYS),
    ("m006_company_rules", M006_COMPANY_RULES),
    ("m008_attachments", _pg(M008_ATTACHMENTS)),
    ("m009_console", _pg(M009_CONSOLE)),
    ("m010_checkin_backlog", _pg(M010_CHECKIN_BACKLOG)),
    ("m011_sync_speed", _pg(M011_SYNC_SPEED)),
    ("m012_push_inbox", _pg(M012_PUSH_INBOX.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"))
     # A stored body lives seconds: compressing its ~1 MB (TOAST's default) would cost
     # the database's CPU at every stored batch for a row about to go.
     + "ALTER TABLE push_inbox ALTER COLUMN body SET STORAGE EXTERNAL;\n"),
)
KNOWN: tuple[str, ...] = tuple(name for name, _ in MIGRATIONS)

_LEDGER = ('CREATE TABLE IF NOT EXISTS fieldvault_migrations '
           '(name TEXT COLLATE "C" PRIMARY KEY, applied_at TEXT)')


def recorded(conn: psycopg.Connection[object]) -> list[str] | None:
    """The migration names this database has applied, or None when it has no ledger
    (an empty database, or not a FieldVault archive)."""
    if conn.execute("SELECT to_regclass('fieldvault_migrations')").fetchone() == (None,):
        return None
    return [str(r[0]) for r in conn.execute(  # type: ignore[index]
        "SELECT name FROM fieldvault_migrations ORDER BY name")]


def apply(conn: psycopg.Connection[object]) -> list[str]:
    """Apply every migration this database lacks, each in its own transaction under an
    advisory lock (concurrent migrators apply each one once); returns the names applied.
    Raises SchemaTooNew, changing nothing, when the database has migrations not in KNOWN.
    `conn` must be in autocommit mode (each migration is its own transaction)."""
    if not conn.autocommit:
        raise ValueError("server_pg.apply needs an autocommit connection")
    applied: list[str] = []
    for name, ddl in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(_LEDGER)
            done = {str(r[0]) for r in conn.execute(  # type: ignore[index]
                "SELECT name FROM fieldvault_migrations")}
            unknown = sorted(done - set(KNOWN))
            if unknown:
                raise SchemaTooNew(unknown)
            if name in done:
                continue
            conn.execute(ddl)  # our own constant DDL, no parameters
            conn.execute(
                "INSERT INTO fieldvault_migrations (name, applied_at) VALUES (%s, %s)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            applied.append(name)
    return applied
