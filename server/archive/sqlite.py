"""SQLite backend of the archive: plain SQLite in WAL mode, so Litestream can replicate it."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlite_utils import Database

from schema.clock import Clock, SystemClock, iso, parse_iso
from schema.enums import OwnershipSource, RepTier
from schema.migrations.server import migrations
from schema.models import CUSTOMER_EDITABLE_FIELDS, CustomerCreate, CustomerPatch, OpResult
from schema.records import to_record
from schema.signing import b64e

from .. import audit
from . import datadir, revocation, sqlite_sync
from .base import ArchiveError, Device, PullPage

ARCHIVE_FILE = "archive.db"
# Crockford base32 without look-alikes: codes are read aloud and typed by hand.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"


def hash_code(code: str) -> str:
    normalized = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def connect(path: Path) -> sqlite3.Connection:
    # Every customer in plaintext: owner-only, and SQLite gives -wal and -shm the same mode.
    with contextlib.suppress(OSError):  # not ours, or a read-only mount: check_ready says so
        st = os.stat(path)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(path, 0o600)
    conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 10000")
    # NORMAL is durable across process crashes in WAL mode and is what
    # Litestream's documentation recommends.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # A pushed batch of 500 visits dirties ~2,500 pages (random-id keys in the visit,
    # revision and applied-op B-trees): with the 2 MiB default cache they spill to the
    # WAL mid-transaction and are written again. 16 MiB (per connection, filled only
    # as used) keeps a batch in memory: ~20-30% less time per pushed operation.
    conn.execute("PRAGMA cache_size = -16384")
    return conn


WIPE_RECEIPT_MEANING = ("attested by the device: its own signed statement that it destroyed "
                        "its copy, not proof that no other copy exists")


class SQLiteArchive:
    """The master archive in one SQLite file. Thread-safe: one connection per thread."""

    def __init__(self, data_dir: Path, clock: Clock | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / ARCHIVE_FILE
        self.clock = clock or SystemClock()
        self._local = threading.local()
        if not self.path.exists():
            raise ArchiveError(
                "not_initialized",
                f"no archive in {self.data_dir}: run `fieldvault-server init --data {self.data_dir}`",
            )
        self.epoch = self._meta("archive_epoch") or ""

    @classmethod
    def init(cls, data_dir: Path, clock: Clock | None = None) -> SQLiteArchive:
        """Create or migrate the archive; idempotent."""
        # 0700 when we create it: the archive holds every customer in plaintext.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        datadir.secure_data_dir(data_dir)  # a folder that existed before may be 0755
        datadir.create_private_file(data_dir / ARCHIVE_FILE)
        conn = connect(data_dir / ARCHIVE_FILE)
        db = Database(conn)
        migrations.apply(db)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('archive_epoch', ?)",
            (uuid.uuid4().hex,),
        )
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('card_counter', '0')")
        conn.close()
        return cls(data_dir, clock)

    # --- plumbing --------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, avoiding
        deadlock-style SQLITE_BUSY when two readers both try to upgrade."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite already rolled back after e.g. a full disk
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def start_new_epoch(self, note: str) -> str:
        """Give the archive a new identity, e.g. after a restore: agents that see
        it reconcile what the archive may have lost before pulling again."""
        epoch = uuid.uuid4().hex
        with self.write() as c:
            c.execute("UPDATE meta SET value=? WHERE key='archive_epoch'", (epoch,))
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('epoch_note', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (f"{self.now()} {note}",),
            )
            audit.append(c, self.now(), "admin", "archive.new_epoch", epoch, {"note": note})
        self.epoch = epoch
        return epoch

    def record_export(self, what: str, count: int, filters: dict[str, Any], by: str = "admin") -> None:
        """Customer data leaving the archive (admin listings) is logged in the audit chain."""
        with self.write() as c:
            audit.append(c, self.now(), by, f"export.{what}", "", {"count": count, **filters})

    def audit_verify(self) -> audit.Verdict:
        return audit.verify(self.conn)

    def audit_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The most recent `limit` entries (all for None), oldest first."""
        rows = self._rows("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?", (_lim(limit),))
        for r in rows:
            r["details"] = orjson.loads(r["details"])
        return rows[::-1]

    def audit_count(self) -> int:
        return self._count("SELECT seq FROM audit_log")

    def ping(self) -> None:
        self.conn.execute("SELECT 1 FROM meta LIMIT 1").fetchone()

    def now(self) -> str:
        return iso(self.clock.now())

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, params)]

    def _stream(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        """Rows as dicts, read as they are consumed (a big listing is never held whole);
        the query runs, and fails, now."""
        cursor = self.conn.execute(sql, params)
        return (dict(r) for r in cursor)

    def _count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])  # noqa: S608

    # --- reps ------------------------------------------------------------------

    def add_rep(self, name: str, manager: str | None = None, tier: str = "mid") -> dict[str, Any]:
        name = name.strip()
        if not name or len(name) > 200:
            raise ArchiveError("invalid_name", "a rep needs a name of 1-200 characters")
        try:
            tier = RepTier(tier).value
        except ValueError:
            raise ArchiveError("invalid_tier", "tier must be senior, mid or junior") from None
        manager_id = self.resolve_rep(manager)["id"] if manager else None
        rep_id, now = "rep_" + secrets.token_hex(4), self.now()
        rep: dict[str, Any] = {"id": rep_id, "name": name, "manager_id": manager_id,
                               "tier": tier, "active": 1, "created_at": now}
        with self.write() as c:
            if c.execute("SELECT 1 FROM reps WHERE name=?", (name,)).fetchone():
                raise ArchiveError("duplicate_rep", f"a rep named {name!r} already exists", 409)
            c.execute(
                "INSERT INTO reps (id, name, manager_id, tier, active, created_at) "
                "VALUES (:id, :name, :manager_id, :tier, :active, :created_at)", rep,
            )
            audit.append(c, now, "admin", "rep.add", rep_id,
                         {"name": name, "manager_id": manager_id, "tier": tier})
        return rep

    def list_reps(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT r.*, (SELECT count(*) FROM customers c WHERE c.owner_rep_id = r.id) AS customers,"
            " (SELECT count(*) FROM devices d WHERE d.rep_id = r.id) AS devices"
            " FROM reps r ORDER BY r.name LIMIT ?", (_lim(limit),)
        )

    def resolve_rep(self, ref: str | None) -> dict[str, Any]:
        """A rep by id or exact name."""
        row = self.conn.execute(
            "SELECT * FROM reps WHERE id=? OR name=?", (ref, ref)
        ).fetchone()
        if row is None:
            raise ArchiveError("unknown_rep", f"no rep {ref!r}: see `fieldvault-server rep list`", 404)
        return dict(row)

    # --- enrollment and devices -------------------------------------------------

    def create_enroll_code(self, rep: str, ttl: timedelta) -> tuple[str, str]:
        """A one-time code for `rep`, valid for `ttl`; only its hash is stored."""
        rep_id = self.resolve_rep(rep)["id"]
        if ttl <= timedelta(0) or ttl > timedelta(days=30):
            raise ArchiveError("invalid_ttl", "the code's lifetime must be between 1s and 30 days")
        code = new_code()
        expires = iso(self.clock.now() + ttl)
        with self.write() as c:
            c.execute(
                "INSERT INTO enroll_codes (code_hash, rep_id, created_at, expires_at) "
                "VALUES (?,?,?,?)",
                (hash_code(code), rep_id, self.now(), expires),
            )
            audit.append(c, self.now(), "admin", "enroll_code.create", rep_id,
                         {"expires_at": expires})
        return code, expires

    def enroll(self, code: str, name: str, sign_pub: bytes, box_pub: bytes) -> Device:
        device_id = "dev_" + secrets.token_hex(8)
        now = self.now()
        with self.write() as c:
            row = c.execute(
                "SELECT rep_id, expires_at, used_at FROM enroll_codes WHERE code_hash=?",
                (hash_code(code),),
            ).fetchone()
            # One answer for unknown, used and expired codes: no oracle for guessing.
            if row is None or row["used_at"] is not None or row["expires_at"] < now:
                raise ArchiveError(
                    "invalid_code",
                    "enrollment code is unknown, used or expired: ask your admin for a new one",
                    403,
                )
            rep = c.execute("SELECT active FROM reps WHERE id=?", (row["rep_id"],)).fetchone()
            if not rep["active"]:
                raise ArchiveError("rep_inactive", "this rep is no longer active", 403)
            c.execute(
                "UPDATE enroll_codes SET used_at=?, device_id=? WHERE code_hash=?",
                (now, device_id, hash_code(code)),
            )
            try:
                c.execute(
                    "INSERT INTO devices (id, rep_id, name, sign_public_key, box_public_key,"
                    " enrolled_at) VALUES (?,?,?,?,?,?)",
                    (device_id, row["rep_id"], name, sign_pub, box_pub, now),
                )
            except sqlite3.IntegrityError:  # the unique key indexes; the code stays unused
                raise ArchiveError("key_in_use", "these public keys belong to another device: "
                                   "generate new keys and enroll again", 409) from None
            audit.append(c, now, device_id, "device.enroll", row["rep_id"], {"name": name})
        device = self.get_device(device_id)
        assert device is not None
        return device

    def get_device(self, device_id: str) -> Device | None:
        row = self.conn.execute(
            "SELECT id, rep_id, name, sign_public_key, box_public_key, state FROM devices "
            "WHERE id=?", (device_id,),
        ).fetchone()
        return Device(**dict(row)) if row else None

    def list_devices(self, rep: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT d.id, d.rep_id, r.name AS rep_name, d.name, d.state, d.enrolled_at, "
               "d.last_seen_at, d.last_seq, d.revoked_at, d.lease_epoch, d.lease_issued_at, "
               "d.block_at, d.wipe_at, w.issued_at AS wipe_ordered_at, "
               "w.receipt_at AS wipe_receipt_at FROM devices d JOIN reps r ON r.id = d.rep_id "
               "LEFT JOIN wipe_orders w ON w.device_id = d.id")
        if rep:
            rows = self._rows(sql + " WHERE d.rep_id=? ORDER BY d.enrolled_at LIMIT ?",
                              (self.resolve_rep(rep)["id"], _lim(limit)))
        else:
            rows = self._rows(sql + " ORDER BY d.enrolled_at LIMIT ?", (_lim(limit),))
        now = self.now()
        for row in rows:
            # Past its block deadline without checking in, an active device has
            # locked itself: show what the laptop is doing, not just the record.
            if row["state"] == "active" and row["block_at"] and row["block_at"] <= now:
                row["state"] = "blocked"
        return rows

    def remember_nonce(self, device_id: str, nonce: str, now_ts: float, window_s: float) -> bool:
        with self.write() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO nonces (device_id, nonce, seen_at) VALUES (?,?,?)",
                (device_id, nonce, now_ts),
            )
            fresh = cur.rowcount == 1
            # Nonces older than twice the accepted skew can never be replayed
            # (their timestamps are refused), so they are pruned now and then.
            if fresh and secrets.randbelow(64) == 0:
                c.execute("DELETE FROM nonces WHERE seen_at < ?", (now_ts - 2 * window_s,))
            c.execute("UPDATE devices SET last_seen_at=? WHERE id=?", (self.now(), device_id))
        return fresh

    # --- customers -------------------------------------------------------------

    def _insert_customer(
        self, c: sqlite3.Connection, data: CustomerCreate, owner: str | None, by: str,
        source: OwnershipSource, customer_id: str | None = None, created_at: str | None = None,
        device_id: str | None = None, op_id: str | None = None,
    ) -> dict[str, Any]:
        counter = int(c.execute("SELECT value FROM meta WHERE key='card_counter'").fetchone()[0]) + 1
        c.execute("UPDATE meta SET value=? WHERE key='card_counter'", (str(counter),))
        now = self.now()
        row = {
            "id": customer_id or uuid.uuid4().hex, "rev": 1, "card_no": f"FV{counter:06d}",
            **to_record(data), "created_by": by, "created_at": created_at or now,
            "owner_rep_id": owner, "owned_since": now if owner else None,
            "ownership_source": source.value if owner else OwnershipSource.pool.value,
            "last_served_at": None, "updated_at": now,
        }
        cols = ", ".join(row)
        c.execute(
            f"INSERT INTO customers ({cols}) VALUES ({', '.join('?' for _ in row)})",
            tuple(row.values()),
        )
        c.execute(
            "INSERT INTO ownership (customer_id, from_rep_id, to_rep_id, source, reason, by, at) "
            "VALUES (?,?,?,?,?,?,?)",
            (row["id"], None, owner, row["ownership_source"], "card created", by, now),
        )
        seq = sqlite_sync.feed(c, owner, "customer", row["id"], row["id"])
        sqlite_sync.customer_revision(c, row, seq, by, device_id, op_id, now)
        return row

    def add_customer(
        self, data: CustomerCreate, owner: str | None = None, by: str = "admin"
    ) -> dict[str, Any]:
        owner_id = self.resolve_rep(owner)["id"] if owner else None
        with self.write() as c:
            row = self._insert_customer(c, data, owner_id, by, OwnershipSource.assigned)
            audit.append(c, row["created_at"], by, "customer.add", row["id"], {"owner": owner_id})
            return row

    def import_customers(self, rows: list[tuple[CustomerCreate, str | None]], by: str) -> int:
        owners = {o: self.resolve_rep(o)["id"] for _, o in rows if o}
        with self.write() as c:
            for data, owner in rows:
                self._insert_customer(
                    c, data, owners[owner] if owner else None, by, OwnershipSource.assigned
                )
            audit.append(c, self.now(), by, "customer.import", "", {"count": len(rows)})
        return len(rows)

    def import_csv(self, path: Path, by: str = "admin") -> int:
        """Import a CSV whose header names card fields (and optionally `owner`).
        Every row is checked first; one bad row imports nothing."""
        parsed: list[tuple[CustomerCreate, str | None]] = []
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh, strict=True)  # strict: a stray quote is an error
                fields = set(reader.fieldnames or [])
                unknown = fields - set(CUSTOMER_EDITABLE_FIELDS) - {"owner"}
                if "name" not in fields:
                    raise ArchiveError("invalid_csv", f"{path}: the header must have a `name` column")
                if unknown:
                    raise ArchiveError(
                        "invalid_csv", f"{path}: unknown columns {sorted(unknown)}"
                    )
                for rec in reader:
                    line = reader.line_num
                    if None in rec:  # DictReader files surplus values under None
                        raise ArchiveError(
                            "invalid_csv", f"{path}:{line}: more values than the header has columns"
                        )
                    owner = (rec.pop("owner", "") or "").strip() or None
                    try:
                        data = CustomerCreate.model_validate(
                            {k: v for k, v in rec.items() if v not in (None, "")}
                        )
                    except ValidationError as exc:
                        first = exc.errors()[0]
                        where = ".".join(str(p) for p in first["loc"])
                        raise ArchiveError(
                            "invalid_csv", f"{path}:{line}: {where}: {first['msg']}"
                        ) from None
                    if owner:
                        try:
                            self.resolve_rep(owner)
                        except ArchiveError as exc:
                            raise ArchiveError("invalid_csv", f"{path}:{line}: owner: {exc.message}"
                                               ) from None
                    parsed.append((data, owner))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ArchiveError("invalid_csv", f"cannot read {path}: {exc}") from None
        return self.import_customers(parsed, by)

    def get_customer(self, ref: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT * FROM customers WHERE id=? OR card_no=?", (ref, ref)
        ).fetchone()
        if row is None:
            raise ArchiveError("unknown_customer", f"no customer {ref!r}", 404)
        return dict(row)

    def edit_customer(self, ref: str, patch: CustomerPatch, by: str) -> dict[str, Any]:
        """An office edit: applied as a new revision (reps' edits merge against it)."""
        cid = self.get_customer(ref)["id"]
        with self.write() as c:
            row = dict(c.execute("SELECT * FROM customers WHERE id=?", (cid,)).fetchone())
            row.update(patch.changes())
            row["rev"] += 1
            row["updated_at"] = self.now()
            sqlite_sync.store_customer(c, row, by, None, None)
            audit.append(c, row["updated_at"], by, "customer.edit", cid,
                         {"fields": sorted(patch.model_fields_set)})
        return row

    def assign(self, ref: str, rep: str | None, reason: str, by: str) -> dict[str, Any]:
        """Give a customer to `rep` (None: the pool); the old owner's devices evict it."""
        new_owner = self.resolve_rep(rep)["id"] if rep else None
        cid = self.get_customer(ref)["id"]
        with self.write() as c:
            return self.assign_in(c, cid, new_owner, reason, by)

    def assign_in(
        self, c: sqlite3.Connection, cid: str, new_owner: str | None, reason: str, by: str
    ) -> dict[str, Any]:
        """`assign` inside the caller's transaction."""
        row = dict(c.execute("SELECT * FROM customers WHERE id=?", (cid,)).fetchone())
        old_owner = row["owner_rep_id"]
        if old_owner == new_owner:
            return row
        now = self.now()
        source = OwnershipSource.assigned if new_owner else OwnershipSource.pool
        row.update(owner_rep_id=new_owner, owned_since=now if new_owner else None,
                   ownership_source=source.value, rev=row["rev"] + 1, updated_at=now)
        c.execute(
            "INSERT INTO ownership (customer_id, from_rep_id, to_rep_id, source, reason, by, at)"
            " VALUES (?,?,?,?,?,?,?)",
            (cid, old_owner, new_owner, source.value, reason, by, now),
        )
        if old_owner:
            sqlite_sync.feed(c, old_owner, "evict", cid, cid)
        # A grant makes the new owner's next pull bring the card and its
        # whole visit history, whoever wrote it.
        sqlite_sync.store_customer(c, row, by, None, None, feed_kind="grant")
        audit.append(c, now, by, "customer.assign", cid,
                     {"from": old_owner, "to": new_owner, "reason": reason})
        return row

    # --- departures --------------------------------------------------------------

    def revoke(
        self, rep: str, reason: str, reassign_to: str = "pool", effective_at: str | None = None,
        by: str = "hr", source: str = "cli",
    ) -> dict[str, Any]:
        """Record a rep's departure; applied now, or when `effective_at` comes.
        Idempotent: revoking a rep again returns the existing departure."""
        return self.revoke_many([(rep, reason, reassign_to, effective_at)], by, source)[0]

    def revoke_many(
        self, entries: list[tuple[str, str, str, str | None]], by: str, source: str
    ) -> list[dict[str, Any]]:
        """Several departures (rep, reason, reassign_to, effective_at) in one
        transaction: one bad entry and none is applied."""
        out = []
        with self.write() as c:
            for rep, reason, reassign_to, effective_at in entries:
                out.append(self._revoke_in(c, rep, reason, reassign_to, effective_at, by, source))
        return out

    def _revoke_in(
        self, c: sqlite3.Connection, rep: str, reason: str, reassign_to: str,
        effective_at: str | None, by: str, source: str,
    ) -> dict[str, Any]:
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise ArchiveError("invalid_reason", "give a reason of 1-500 characters")
        row = self.resolve_rep(rep)
        now = self.now()
        try:
            when = iso(parse_iso(effective_at)) if effective_at else now
        except ValueError:
            raise ArchiveError("invalid_time", f"{effective_at!r} is not an ISO time") from None
        existing = c.execute("SELECT * FROM revocations WHERE rep_id=?", (row["id"],)).fetchone()
        if existing is not None:
            return {**self._revocation_summary(dict(existing)), "already": True}
        revocation.plan(c, row, reassign_to)  # refuse an impossible reassignment up front
        cur = c.execute(
            "INSERT INTO revocations (rep_id, reason, reassign_to, effective_at, requested_by,"
            " source, requested_at) VALUES (?,?,?,?,?,?,?)",
            (row["id"], reason, reassign_to, when, by, source, now),
        )
        audit.append(c, now, by, "rep.revoke_requested", row["id"],
                     {"reason": reason, "effective_at": when, "reassign_to": reassign_to,
                      "source": source})
        if when <= now:
            record = dict(c.execute("SELECT * FROM revocations WHERE id=?",
                                    (cur.lastrowid,)).fetchone())
            revocation.apply(self, c, record)
        record = dict(c.execute("SELECT * FROM revocations WHERE id=?",
                                (cur.lastrowid,)).fetchone())
        return {**self._revocation_summary(record), "already": False}

    def create_hr_token(self, name: str) -> str:
        """A bearer token for the HR system's API calls; only its hash is kept."""
        token = "fvhr_" + secrets.token_urlsafe(32)
        with self.write() as c:
            c.execute("INSERT INTO hr_tokens (token_hash, name, created_at) VALUES (?,?,?)",
                      (hashlib.sha256(token.encode()).hexdigest(), name, self.now()))
            audit.append(c, self.now(), "admin", "hr_token.create", name)
        return token

    def check_hr_token(self, token: str) -> str | None:
        """The token's name if it is valid. Looked up by SHA-256, then compared in
        constant time, so response time says nothing about the secret."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = self.conn.execute(
            "SELECT token_hash, name FROM hr_tokens WHERE token_hash=? AND revoked_at IS NULL",
            (digest,)).fetchone()
        if row is None or not hmac.compare_digest(row[0], digest):
            return None
        return str(row[1])

    def _revocation_summary(self, record: dict[str, Any]) -> dict[str, Any]:
        counts = revocation.tally(orjson.loads(record["reassigned"]))
        return {"id": record["id"], "rep_id": record["rep_id"], "reason": record["reason"],
                "effective_at": record["effective_at"], "applied_at": record["applied_at"],
                "status": "applied" if record["applied_at"] else "scheduled",
                "reassign_to": record["reassign_to"], "reassigned": counts,
                "requested_by": record["requested_by"], "source": record["source"]}

    def process_due_revocations(self) -> list[dict[str, Any]]:
        """Apply departures whose effective time has come (called by the server loop)."""
        now = self.now()
        due = self._rows("SELECT id FROM revocations WHERE applied_at IS NULL AND effective_at<=?",
                         (now,))
        done = []
        for item in due:
            with self.write() as c:
                record = dict(c.execute("SELECT * FROM revocations WHERE id=?",
                                        (item["id"],)).fetchone())
                if record["applied_at"] is None:
                    revocation.apply(self, c, record)
                    done.append(record["rep_id"])
        return done

    # --- key leases and policy ------------------------------------------------------

    def policy(self) -> dict[str, Any]:
        return {"offline_block_hours": float(self._meta("offline_block_hours") or 72),
                "offline_wipe_days": float(self._meta("offline_wipe_days") or 30),
                "require_pin": self._meta("require_pin") == "1"}

    def set_policy(self, block_hours: float | None, wipe_days: float | None,
                   require_pin: bool | None, by: str = "admin") -> dict[str, Any]:
        new = self.policy()
        if block_hours is not None:
            new["offline_block_hours"] = block_hours
        if wipe_days is not None:
            new["offline_wipe_days"] = wipe_days
        if require_pin is not None:
            new["require_pin"] = require_pin
        if not 0 < new["offline_block_hours"] <= 24 * 365:
            raise ArchiveError("invalid_policy", "offline block hours must be in (0, 8760]")
        if not 0 < new["offline_wipe_days"] <= 3650:
            raise ArchiveError("invalid_policy", "offline wipe days must be in (0, 3650]")
        if new["offline_wipe_days"] * 24 < new["offline_block_hours"]:
            raise ArchiveError("invalid_policy", "the wipe deadline must not come before the block")
        with self.write() as c:
            for key in ("offline_block_hours", "offline_wipe_days"):
                c.execute("UPDATE meta SET value=? WHERE key=?", (repr(new[key]), key))
            c.execute("UPDATE meta SET value=? WHERE key='require_pin'",
                      ("1" if new["require_pin"] else "0",))
            audit.append(c, self.now(), by, "policy.set", "", new)
        return new

    def issue_lease(self, device_id: str, have_epoch: int | None) -> dict[str, Any]:
        """A fresh lease for an active device, plus the secret the device's DEK is
        currently wrapped under (so a blocked device can unwrap and re-wrap).
        The two latest secrets are kept: a lease whose answer was lost is still
        recoverable."""
        policy = self.policy()
        now_dt = self.clock.now()
        now = iso(now_dt)
        with self.write() as c:
            dev = c.execute("SELECT * FROM devices WHERE id=?", (device_id,)).fetchone()
            if dev is None or dev["state"] != "active":
                raise ArchiveError("device_revoked", "this device is no longer allowed", 403)
            epoch = dev["lease_epoch"]
            unwrap = None
            if have_epoch is not None and have_epoch == epoch and dev["lease_secret"]:
                unwrap, prev = bytes(dev["lease_secret"]), dev["lease_secret"]
            elif have_epoch is not None and have_epoch == epoch - 1 and dev["lease_prev_secret"]:
                # The device never installed the last lease (answer lost, PIN refused):
                # re-issue that epoch, so the kept secret stays the one of epoch - 1
                # however many attempts fail (moving on would lose it at the second).
                unwrap, prev = bytes(dev["lease_prev_secret"]), dev["lease_prev_secret"]
                epoch -= 1
            else:
                prev = dev["lease_secret"]
            if have_epoch is not None and have_epoch > epoch:
                # The archive was restored from a replica older than the device's lease:
                # go on from the device's epoch (anything at or below it is refused as a
                # replay). The secret of that epoch was lost with the archive.
                epoch, prev = have_epoch, None
            secret = secrets.token_bytes(32)
            block_at = iso(now_dt + timedelta(hours=policy["offline_block_hours"]))
            wipe_at = iso(now_dt + timedelta(days=policy["offline_wipe_days"]))
            c.execute(
                "UPDATE devices SET lease_epoch=?, lease_secret=?, lease_prev_secret=?, "
                "lease_issued_at=?, block_at=?, wipe_at=? WHERE id=?",
                (epoch + 1, secret, prev, now, block_at, wipe_at, device_id),
            )
        lease = {"device_id": device_id, "epoch": epoch + 1, "issued_at": now,
                 "block_at": block_at, "wipe_at": wipe_at, "require_pin": policy["require_pin"],
                 "secret": b64e(secret)}
        return {"lease": lease,
                "unwrap": {"epoch": have_epoch, "secret": b64e(unwrap)} if unwrap else None}

    def final_flush(self, device: Device, ops: list[Any]) -> tuple[list[OpResult], dict[str, Any]]:
        """A revoked device's last push, or the ops of its opened outbox envelopes:
        everything goes to quarantine for review (company data, not merged blindly),
        once per op_id, and the device gets its wipe order."""
        with self.write() as c:
            results = sqlite_sync.quarantine_ops(
                self, c, device, ops, "final flush from a revoked device; held for review")
            return results, self._wipe_order_in(c, device)

    def _wipe_order_in(self, c: sqlite3.Connection, device: Device) -> dict[str, Any]:
        row = c.execute("SELECT order_id, issued_at FROM wipe_orders WHERE device_id=?",
                        (device.id,)).fetchone()
        if row is None:
            order_id, now = "wo_" + secrets.token_hex(8), self.now()
            c.execute("INSERT INTO wipe_orders (order_id, device_id, issued_at) VALUES (?,?,?)",
                      (order_id, device.id, now))
            c.execute("UPDATE devices SET state='wipe_pending' WHERE id=? AND state='revoked'",
                      (device.id,))
            audit.append(c, now, "server", "device.wipe_order", device.id, {"order_id": order_id})
            row = (order_id, now)
        return {"type": "wipe_order", "order_id": row[0], "device_id": device.id,
                "rep_id": device.rep_id, "issued_at": row[1]}

    def record_wipe_receipt(self, device: Device, receipt: dict[str, Any]) -> None:
        with self.write() as c:
            order = c.execute("SELECT order_id, receipt_at FROM wipe_orders WHERE device_id=?",
                              (device.id,)).fetchone()
            if order is None or order[0] != receipt.get("order_id"):
                raise ArchiveError("unknown_order", "no wipe was ordered for this device "
                                                  "with that order_id", 409)
            if order[1] is not None:
                # A retried receipt, or one from a copy of the laptop (a disk image, a
                # restored backup) wiped later: the first stays, each later one is noted.
                if c.execute("SELECT receipt FROM wipe_orders WHERE order_id=?",
                             (order[0],)).fetchone()[0] != orjson.dumps(receipt).decode():
                    audit.append(c, self.now(), device.id, "device.wipe_receipt.again",
                                 device.id, {"order_id": order[0],
                                             "wiped_at": receipt.get("wiped_at")})
                return
            now = self.now()
            c.execute("UPDATE wipe_orders SET receipt_at=?, receipt=? WHERE order_id=?",
                      (now, orjson.dumps(receipt).decode(), order[0]))
            c.execute("UPDATE devices SET state='wiped' WHERE id=?", (device.id,))
            audit.append(c, now, device.id, "device.wipe_receipt", device.id,
                         {"order_id": order[0], "wiped_at": receipt.get("wiped_at")})

    def departure_report(self, rep: str) -> dict[str, Any]:
        """What HR needs to see: when and by whom, devices wiped, customers, visits kept."""
        row = self.resolve_rep(rep)
        rec = self.conn.execute("SELECT * FROM revocations WHERE rep_id=?", (row["id"],)).fetchone()
        if rec is None:
            raise ArchiveError("not_revoked", f"{row['name']} has not been revoked", 404)
        summary = self._revocation_summary(dict(rec))
        reassigned = orjson.loads(rec["reassigned"])
        names = {r["id"]: r["name"] for r in self._rows("SELECT id, name FROM reps")}
        customers = [
            {"customer_id": cid, "name": c["name"], "card_no": c["card_no"],
             "to": reassigned[cid], "to_name": names.get(reassigned[cid] or "", "pool"),
             "owner_now": c["owner_rep_id"]}
            for cid in reassigned for c in [self.get_customer(cid)]
        ]
        return {
            "rep": {"id": row["id"], "name": row["name"], "active": bool(row["active"])},
            "revocation": summary, "devices": self.list_devices(row["id"]),
            # A receipt is signed by the device key: it says the laptop's agent reports
            # having destroyed its copy. It is not proof that no copy is left (a disk
            # image, a backup, a modified agent): see docs/SECURITY.md.
            "wipe_receipt": WIPE_RECEIPT_MEANING, "customers": customers,
            "visits_preserved": self.conn.execute(
                "SELECT count(*) FROM visits WHERE rep_id=?", (row["id"],)).fetchone()[0],
            "quarantined": self.conn.execute(
                "SELECT count(*) FROM quarantine WHERE rep_id=?", (row["id"],)).fetchone()[0],
        }

    # Listings: `limit=None` means every row; `iter_*` stream, `count_*` give the total.

    def _customers_of(self, owner: str | None) -> tuple[str, tuple[Any, ...]]:
        if owner == "pool":
            return "SELECT * FROM customers WHERE owner_rep_id IS NULL", ()
        if owner:
            return "SELECT * FROM customers WHERE owner_rep_id=?", (self.resolve_rep(owner)["id"],)
        return "SELECT * FROM customers", ()

    def iter_customers(self, owner: str | None = None,
                       limit: int | None = None) -> Iterator[dict[str, Any]]:
        sql, params = self._customers_of(owner)
        return self._stream(sql + " ORDER BY card_no LIMIT ?", (*params, _lim(limit)))

    def list_customers(self, owner: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_customers(owner, limit))

    def count_customers(self, owner: str | None = None) -> int:
        return self._count(*self._customers_of(owner))

    def ownership_history(self, ref: str) -> list[dict[str, Any]]:
        cid = self.get_customer(ref)["id"]
        return self._rows("SELECT * FROM ownership WHERE customer_id=? ORDER BY id", (cid,))

    def _visits_of(self, rep: str | None, customer: str | None) -> tuple[str, tuple[Any, ...]]:
        where, params = [], []
        if rep:
            where.append("rep_id=?")
            params.append(self.resolve_rep(rep)["id"])
        if customer:
            where.append("customer_id=?")
            params.append(self.get_customer(customer)["id"])
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return f"SELECT * FROM visits{clause}", tuple(params)  # noqa: S608

    def iter_visits(self, rep: str | None = None, customer: str | None = None,
                    limit: int | None = None) -> Iterator[dict[str, Any]]:
        sql, params = self._visits_of(rep, customer)
        return self._stream(sql + " ORDER BY started_at LIMIT ?", (*params, _lim(limit)))

    def list_visits(self, rep: str | None = None, customer: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_visits(rep, customer, limit))

    def count_visits(self, rep: str | None = None, customer: str | None = None) -> int:
        return self._count(*self._visits_of(rep, customer))

    def conflicts(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT k.*, c.name AS customer_name, c.card_no FROM conflicts k "
            "JOIN customers c ON c.id = k.customer_id ORDER BY k.id LIMIT ?", (_lim(limit),)
        )
        for r in rows:
            r["server_value"] = orjson.loads(r["server_value"])
            r["rep_value"] = orjson.loads(r["rep_value"])
        return rows

    def quarantine(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM quarantine ORDER BY id LIMIT ?", (_lim(limit),))
        for r in rows:
            r["payload"] = orjson.loads(r["payload"])
        return rows

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("reps", "devices", "customers", "visits", "conflicts", "quarantine"):
            out[table] = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return out

    # --- sync ----------------------------------------------------------------------

    def push(self, device: Device, ops: list[Any]) -> list[OpResult]:
        with self.write() as c:
            return sqlite_sync.apply_ops(self, c, device, ops)

    def revisions(
        self, rep_id: str, customer_ids: list[str], visit_ids: list[str]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Archive revs of the named records that are in the rep's scope."""
        customers = sqlite_sync.in_chunks(
            self.conn, "SELECT id, rev FROM customers WHERE id IN ({}) "
            "AND (owner_rep_id=? OR created_by=?)", customer_ids, (rep_id, rep_id))
        visits = sqlite_sync.in_chunks(
            self.conn, "SELECT id, rev FROM visits WHERE id IN ({}) AND rep_id=?",
            visit_ids, (rep_id,))
        return ({r["id"]: r["rev"] for r in customers}, {r["id"]: r["rev"] for r in visits})

    def pull(self, rep_id: str, after_seq: int, limit: int) -> PullPage:
        return sqlite_sync.read_feed(self.conn, rep_id, after_seq, limit)


def _lim(limit: int | None) -> int:
    """SQLite's LIMIT for `limit` rows; -1 means no limit."""
    return -1 if limit is None else limit


__all__ = ["SQLiteArchive", "connect", "hash_code", "new_code", "parse_iso"]
