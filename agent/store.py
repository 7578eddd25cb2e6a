"""The agent's encrypted local store: customers, visits, outbox and sync state.

One SQLCipher file per agent home. Every local write commits the record and
its outbox operation in one transaction, so a crash never leaves one without
the other, and no write ever needs the network. Each outbox operation is also
sealed to the server's key and appended to `outbox.sealed` (agent/envelopes.py)
before that transaction commits, so a saved operation is never only in the vault:
a revoked laptop whose vault no longer opens still hands it over.
"""

from __future__ import annotations

import operator
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlcipher3

from schema.clock import Clock, SystemClock, iso
from schema.enums import OpKind, OpStatus, OwnershipSource, VisitStatus, can_transition
from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.records import to_record

from . import attachments, envelopes, keystore, visit_evidence
from .attention import POOL_RULES_STATE, Attention
from .errors import StoreError as StoreError
from .home import VAULT_FILE
from .plans import Plans

if TYPE_CHECKING:  # pydantic models and sqlite-utils cost start-up time `status` need not pay
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlite_utils import Database

    from schema.models import (
        CustomerCreate,
        CustomerPatch,
        OpResult,
        VisitCreate,
        VisitPatch,
        VisitVoid,
    )

    from .push_result import PushResult

CUSTOMER_COLUMNS = (
    "id", "rev", "card_no", *CUSTOMER_EDITABLE_FIELDS, "created_by", "created_at",
    "owner_rep_id", "owned_since", "ownership_source", "last_served_at", "updated_at", "locked",
)
VISIT_COLUMNS = (
    "id", "rev", "customer_id", "rep_id", "planned", "started_at", "ended_at", "location",
    "purpose", "summary", "outcome", "feedback", "competitors", "next_at", "next_place",
    "next_content", "status", "void_reason", "created_at", "updated_at", "review_comment",
    "reviewed_by", "reviewed_at", "callback", "callback_note",
)


def _non_empty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def new_id() -> str:
    """A record or operation id made on this laptop (32 hex): creation time in
    microseconds, then 72 random bits. Time-ordered, so the archive's and the vault's
    indexes on these ids (visits, revisions, evidence, applied ops) grow at their end
    instead of at a random page per record: a push of many offline visits writes a few
    pages per batch, not one per visit and index. The tail is what tells two of a day's
    records apart, so a record is found by the first or the last digits of its id
    (`Store._get`). 72 random bits keep ids made in the same microsecond distinct."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"



def _upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c}=excluded.{c}" for c in columns if c != "id")
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}"


# NOT NULL columns a locally made row may not carry yet (the archive's rows always do).
_DEFAULTS: dict[str, Any] = {"locked": 0, "area": "", "review_comment": "", "callback_note": ""}


def _values(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row.get(k, _DEFAULTS.get(k)) for k in columns)


def _rows_getter(columns: tuple[str, ...]) -> Callable[[list[dict[str, Any]]], list[Any]]:
    """`_values` for a whole pulled page, at C speed (a first sync turns ~100k records
    into rows; the per-key Python loop was a good part of its local cost)."""
    base = {k: _DEFAULTS.get(k) for k in columns}
    get = operator.itemgetter(*columns)

    def rows_of(rows: list[dict[str, Any]]) -> list[Any]:
        try:  # the archive's rows carry every column: no merge with the defaults
            return [get(r) for r in rows]
        except KeyError:
            return [get({**base, **r}) for r in rows]

    return rows_of


_customer_rows = _rows_getter(CUSTOMER_COLUMNS)
_visit_rows = _rows_getter(VISIT_COLUMNS)
# Where apply_rows finds what it needs in a row besides the values it writes.
_CUSTOMER_SERVED = CUSTOMER_COLUMNS.index("last_served_at")
_VISIT_CUSTOMER = VISIT_COLUMNS.index("customer_id")
_VISIT_STARTED = VISIT_COLUMNS.index("started_at")


def vault_rows(rows: list[list[Any]], columns: list[str], kind: str) -> list[Any]:
    """A pull page's rows (`shape=rows`: arrays of the `columns` the server names) in the
    vault's column order: as they came when those are the vault's (the usual case, no
    work per row), else by name, a column the server did not send at its default."""
    own = CUSTOMER_COLUMNS if kind == "customer" else VISIT_COLUMNS
    if tuple(columns) == own:
        return rows
    at = {name: i for i, name in enumerate(columns)}
    return [tuple(r[at[k]] if k in at else _DEFAULTS.get(k) for k in own) for r in rows]


def _note_served(c: Any, starts: Iterable[tuple[str, str]],
                 served: dict[str, str | None] | None = None) -> None:
    """The archive moves a card's last_served_at with each accepted visit without a new
    card revision; derive it from the (customer_id, started_at) of the visits that
    arrive. `served`: during a first fill, each card's value as it was written
    (Store._served)."""
    latest: dict[str, str] = {}
    for cid, started in starts:
        if started > latest.get(cid, ""):
            latest[cid] = started
    if served is not None:
        # A first fill knows each card's value as it wrote it (cards carry the
        # archive's, usually the latest already): skip the UPDATEs that would not
        # change it. Each one reads a long card to its last columns: ~64,000 such reads
        # in a 100k first sync. Another process can only raise the value (a visit
        # logged): skipping stays right.
        latest = {cid: at for cid, at in latest.items() if (served.get(cid) or "") < at}
        served.update(latest)
    c.executemany(
        "UPDATE customers SET last_served_at=? WHERE id=? "
        "AND (last_served_at IS NULL OR last_served_at < ?)",
        [(at, cid, at) for cid, at in latest.items()],
    )


# What the archive sets on a visit the rep created (the rest is the rep's, as sent).
_SERVER_SET = ("rev", "status", "created_at", "updated_at", "review_comment", "reviewed_by",
               "reviewed_at", "callback", "callback_note")
_SERVER_SET_SQL = (f"UPDATE visits SET {', '.join(f'{c}=?' for c in _SERVER_SET)} "  # noqa: S608
                   "WHERE id=?")


# The rep's pending edits of some records, by the outbox_edits index (an outbox of new
# visits leaves it empty). Named: left to itself, the planner prefers outbox_state and
# reads every pending op for each lookup, ~0.2 s per 500 ids in a 100k-visit outbox.
_PENDING_EDITS_SQL = (
    "SELECT seq, kind, entity_id, data FROM outbox INDEXED BY outbox_edits "
    "WHERE kind IN ('customer.update', 'visit.update', 'visit.void') "  # the index's WHERE
    "AND entity_id IN ({}) AND state='pending'")


def _server_set(record: dict[str, Any]) -> tuple[Any, ...]:
    return (*(record.get(c, _DEFAULTS.get(c)) for c in _SERVER_SET), record["id"])


_UPSERT_CUSTOMER = _upsert_sql("customers", CUSTOMER_COLUMNS)
_UPSERT_VISIT = _upsert_sql("visits", VISIT_COLUMNS)


def open_vault(path: Path, dek: bytes, must_exist: bool = False) -> sqlcipher3.Connection:
    """Open (creating if needed, unless `must_exist`) the SQLCipher file with a raw key
    and safe pragmas."""
    if must_exist:
        # Never created: a detached index builder racing a wipe must not leave a new,
        # empty vault behind it (SQLite would create the file on connect).
        conn = sqlcipher3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=10,
                                  check_same_thread=False)
    else:
        if not path.exists():
            # SQLite gives the WAL and SHM files the main file's mode: 0600 for all.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlcipher3.connect(str(path), timeout=10, check_same_thread=False)
    conn.execute(keystore.sqlcipher_key_pragma(dek))
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.OperationalError:
        conn.close()  # e.g. a full disk ("disk I/O error": no room for the WAL index)
        raise
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot open {path}: wrong key or not a FieldVault vault") from exc
    # Temp tables and sort spills stay in memory: SQLCipher does not encrypt
    # temp files, so none may reach the disk in plaintext.
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a visit the rep saved survives a power cut, not only a crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    # Every page read from the file is decrypted and every page written encrypted:
    # a 64 MiB page cache (allocated only as filled) keeps the B-tree and FTS pages a
    # pull page or a visit touches in memory. Initial sync inserts ~1.5x faster than
    # with the 2 MiB default. Decrypted pages live in process memory either way.
    conn.execute("PRAGMA cache_size = -65536")
    return conn


# Set in `state` while the FTS indexes lag their tables (a fresh vault's first sync
# fills the tables first and indexes once; the triggers of migration m005 wait for it).
FTS_PENDING = "fts_pending"
# Set in `state` (a JSON list of their SQL) while a first fill's dropped indexes and
# FTS triggers wait.
INDEXES_PENDING = "indexes_pending"
CUSTOMER_TEXT = ("name", "card_no", "decision_maker", "address", "needs", "business_contact",
                 "notes")
VISIT_TEXT = ("summary", "outcome", "feedback", "competitors", "next_content")


def _exact_scan(table: str, columns: tuple[str, ...], term: str) -> tuple[str, list[Any]]:
    """What the trigram index would find, by scanning: the term anywhere in an indexed
    column (LIKE folds ASCII case as the index does)."""
    like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where = " OR ".join(f"{table}.{c} LIKE ? ESCAPE '\\'" for c in columns)
    return f"FROM {table} WHERE {where}", [like] * len(columns)


# `state` key: "<iso time> <count>", the pool warnings counted by the last sync.
POOL_WARNINGS_STATE = "pool_warnings_counted"
# Every pending op up to this seq is stored on the server, its verdict to come
# (`Store.received_through`).
RECEIVED_THROUGH = "received_through"
POOL_WARNINGS_FRESH = timedelta(hours=1)


# How many migrations schema/migrations/agent.py holds (tests/test_startup.py checks it).
# A vault already at this version opens without importing sqlite-utils, which was a
# good part of every command's start-up time.
SCHEMA_VERSION = 8
# How far ahead of the laptop's clock a visit may start (the server allows the 300 s
# skew of a signed request; the laptop a little less).
VISIT_AHEAD_TOLERANCE = timedelta(minutes=4)


class Store(Plans, Attention):
    """The rep's local copy. Construct with `Store.open(home)`."""

    def __init__(self, conn: sqlcipher3.Connection, rep_id: str, clock: Clock,
                 sealer: envelopes.Sealer | None = None) -> None:
        self.conn = conn
        self._db: Database | None = None
        self.rep_id = rep_id
        self.clock = clock
        # The device key signs each visit revision as it is saved (agent/visit_evidence.py).
        self.device_id = ""
        self.evidence_key: Ed25519PrivateKey | None = None
        # What sqlite-utils' Database() sets, set here whether or not it is ever loaded.
        conn.execute("PRAGMA recursive_triggers = on")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            from schema.migrations import agent_fresh

            # A brand-new vault (every enrollment) gets the whole schema at once.
            if not agent_fresh.create(conn, SCHEMA_VERSION):
                from schema.migrations.agent import migrations

                migrations.apply(self.db)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Without a sealer (a lease from before the server had a box key) operations
        # are only in the vault until the next open with one seals them (`_seal_backlog`).
        self.sealer = sealer
        self._unsealed: list[dict[str, Any]] = []
        # During a first fill: card id -> last_served_at as this connection last wrote
        # it (None outside one). See `apply_changes`.
        self._served: dict[str, str | None] | None = None
        if sealer is not None:
            self._seal_backlog()

    @property
    def db(self) -> Database:
        """sqlite-utils over the vault connection, loaded on first use."""
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn)
        return self._db

    @classmethod
    def open(cls, home: Path, rep_id: str = "", clock: Clock | None = None,
             pin: str | None = None, must_exist: bool = False) -> Store:
        """Open an enrolled home's vault; the lease decides whether it may be opened.
        `must_exist`: fail (sqlcipher3.OperationalError) rather than create it."""
        from schema.signing import b64d

        from .home import AgentConfig

        clock = clock or SystemClock()
        config = AgentConfig.load(home)
        if config is None:
            raise StoreError(f"{home} is not enrolled: run `fieldvault enroll --server URL --code C`")
        if pin is None:
            pin = os.environ.get("FIELDVAULT_PIN") or None
        keys = keystore.unlock(home, config.device_id, b64d(config.server_sign_public_key),
                               clock, pin)
        sealer = (envelopes.Sealer(home, config.device_id, keys.server_box_public_key)
                  if keys.server_box_public_key else None)
        store = cls(open_vault(home / VAULT_FILE, keys.dek, must_exist), rep_id or config.rep_id,
                    clock, sealer)
        store.device_id, store.evidence_key = config.device_id, keystore.load_sign_key(home)
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlcipher3.Connection]:
        """One write transaction; IMMEDIATE so a concurrent writer waits instead of failing.
        The envelopes of the operations it queued are appended (one write, one fsync)
        before it commits: if that fails, nothing is saved."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            mark = self._seal_queued()
        except BaseException:
            self._unsealed.clear()
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            # The save failed at its very end (disk full at commit): its envelopes go
            # too, still under the write lock, or the op could reach quarantine later.
            if mark is not None and self.sealer is not None:
                self.sealer.cut_back(mark)
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk does): keep the real error.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # --- state ---------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def _set_state(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO state(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def set_state(self, key: str, value: str) -> None:
        with self.transaction():
            self._set_state(key, value)

    def set_states(self, values: dict[str, str]) -> None:
        """Several state keys in one transaction (one commit, one fsync)."""
        with self.transaction():
            for key, value in values.items():
                self._set_state(key, value)

    # --- outbox --------------------------------------------------------------

    def _enqueue(self, kind: OpKind, entity_id: str, data: dict[str, Any], base_rev: int,
                 at: str | None = None, attached: list[dict[str, Any]] | None = None) -> str:
        """Queue one op; a visit's is signed by the device key (`attached`: the
        attachments the revision names)."""
        op_id = new_id()
        raw = orjson.dumps(data).decode()
        at = at or iso(self.clock.now())
        proof = (visit_evidence.sign(self.evidence_key, self.device_id, kind, entity_id, data,
                                     attached or [], at)
                 if kind in (OpKind.visit_create, OpKind.visit_update) else None)
        cur = self.conn.execute(
            "INSERT INTO outbox (op_id, kind, entity_id, base_rev, data, at, evidence) "
            "VALUES (?,?,?,?,?,?,?)",
            (op_id, kind.value, entity_id, base_rev, raw, at,
             orjson.dumps(proof).decode() if proof else None),
        )
        if self.sealer is not None:
            op = {"op_id": op_id, "seq": cur.lastrowid, "kind": kind.value,
                  "entity_id": entity_id, "base_rev": base_rev,
                  "data": orjson.Fragment(raw), "at": at}
            if proof:
                op["evidence"] = proof
            self._unsealed.append(op)
        return op_id

    # --- sealed envelopes of the outbox (agent/envelopes.py) -----------------------

    def _seal_queued(self) -> int | None:
        """Inside the open transaction: append the queued operations' envelopes and
        note how far the outbox is sealed, committed with them. Returns the envelope
        file's size before the append (None if nothing was appended)."""
        if not self._unsealed or self.sealer is None:
            return None
        ops, self._unsealed = self._unsealed, []
        # Noted first: if the append below fails, the rollback takes this with it.
        self._set_state("sealed_through", str(max(op["seq"] for op in ops)))
        # The envelope is exactly as durable as the transaction it belongs to: fsynced
        # unless the vault's own writes are not (synchronous=OFF, bulk set-up only).
        durable = self.conn.execute("PRAGMA synchronous").fetchone()[0] != 0
        return self.sealer.append(self.sealer.lines(ops), durable)

    def _seal_backlog(self) -> None:
        """Seal what the envelope file lacks: operations queued while no server box key
        was known (an agent enrolled before it existed), or all pending ones again
        when the server's key changed (envelopes to the old key would not open)."""
        assert self.sealer is not None
        key = self.sealer.server_box_public_key.hex()
        if self.get_state("attachments_sealed_to") != key:
            # Photos saved before this laptop sealed them (an older agent, no server
            # key yet) or sealed to a key the server no longer holds.
            with self.transaction():
                attachments.seal_unconfirmed(self)
                self._set_state("attachments_sealed_to", key)
        if self.get_state("sealed_to") != key:
            with self.transaction():
                self.sealer.replace(self.sealer.lines(self.pending_ops(10**9)))
                self._set_state("sealed_to", key)
                self._set_state("sealed_through", str(self._max_seq()))
            return
        through = int(self.get_state("sealed_through") or 0)
        if self.conn.execute("SELECT 1 FROM outbox WHERE state='pending' AND seq > ? LIMIT 1",
                             (through,)).fetchone() is None:
            return
        with self.transaction():
            self.sealer.append(self.sealer.lines(self.pending_ops(10**9, after_seq=through)))
            self._set_state("sealed_through", str(self._max_seq()))

    def _max_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM outbox").fetchone()
        return int(row[0] or 0)

    def compact_envelopes(self) -> bool:
        """Drop the envelopes of operations the server has answered (no longer pending);
        under the vault's write lock, so no save appends meanwhile."""
        if self.sealer is None or not _non_empty(self.sealer.path):
            return False  # the common case after a sync: nothing to drop, no lock taken
        with self.transaction() as c:
            # An op stored on the server is answered for: the server holds it durably.
            pending = {r[0] for r in c.execute(
                "SELECT op_id FROM outbox WHERE state='pending' AND seq > ?",
                (self.received_through(),))}
            return envelopes.keep_only(self.sealer, pending)

    def pending_ops(self, limit: int, after_seq: int = 0) -> list[dict[str, Any]]:
        """Pending operations in device order, as wire dicts (data kept as raw JSON)."""
        rows = self.conn.execute(
            "SELECT seq, op_id, kind, entity_id, base_rev, data, at, evidence FROM outbox "
            "WHERE state='pending' AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [
            {"op_id": r[1], "seq": r[0], "kind": r[2], "entity_id": r[3], "base_rev": r[4],
             "data": orjson.Fragment(r[5]), "at": r[6],
             **({"evidence": orjson.Fragment(r[7])} if r[7] else {})}
            for r in rows
        ]

    # --- operations the archive stored before applying them (server/rules/received.py)
    # They stay `pending` in the outbox until their verdict comes: they are still on their
    # way (a later edit is applied on top of what a pull brings, and so on). One state
    # value tells them apart: every pending op up to `received_through` is on the server.
    # A push batch's receipt then writes one value instead of rewriting 1,000 outbox rows
    # (~30 us an op). A lost write of it only sends those ops again, which the archive
    # answers from its record.

    def received_through(self) -> int:
        """The seq up to which every pending operation is stored on the server."""
        return int(self.get_state(RECEIVED_THROUGH) or 0)

    def mark_received(self, last_seq: int) -> None:
        """A push batch ending at `last_seq` was stored (every op of the push before it
        was answered already). Without an fsync of its own: see above."""
        if last_seq > self.received_through():
            self.conn.execute("PRAGMA synchronous = NORMAL")
            try:
                self.set_state(RECEIVED_THROUGH, str(last_seq))
            finally:
                self.conn.execute("PRAGMA synchronous = FULL")

    def received_ops(self, limit: int) -> list[tuple[str, int]]:
        """(op_id, seq) of the oldest operations stored on the server without their
        verdict yet."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT op_id, seq FROM outbox WHERE state='pending' AND seq <= ? ORDER BY seq "
            "LIMIT ?", (self.received_through(), limit))]

    def push_again(self, op_ids: list[str] | None = None) -> None:
        """Stored operations the archive no longer holds (it was restored from an older
        backup; None: any may be lost, the archive's epoch changed): from the first of
        them on, everything is sent again (the archive answers those it holds from its
        record)."""
        if op_ids is None:
            self.set_state(RECEIVED_THROUGH, "0")
            return
        if not op_ids:
            return
        marks = ",".join("?" * len(op_ids))
        (first,) = self.conn.execute(
            f"SELECT min(seq) FROM outbox WHERE op_id IN ({marks})", op_ids).fetchone()  # noqa: S608
        if first is not None and first <= self.received_through():
            self.set_state(RECEIVED_THROUGH, str(first - 1))

    def backlog(self) -> tuple[int, str | None]:
        """How many operations wait to be pushed, and when the oldest was made (its
        check-in reports them for the fleet view). The outbox_state index answers both."""
        through = self.received_through()
        count = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE state='pending' AND seq > ?", (through,)).fetchone()[0]
        row = self.conn.execute("SELECT at FROM outbox WHERE state='pending' AND seq > ? "
                                "ORDER BY seq LIMIT 1", (through,)).fetchone()
        return int(count), row[0] if row else None

    def outbox_counts(self) -> dict[str, int]:
        """Operations by state; `received`: pending ones stored on the server, their
        verdict to come."""
        rows = self.conn.execute(
            "SELECT CASE WHEN state='pending' AND seq <= ? THEN 'received' ELSE state END, "
            "count(*) FROM outbox GROUP BY 1", (self.received_through(),)).fetchall()
        counts = {"pending": 0, "received": 0, "rejected": 0, "quarantined": 0}
        counts.update({state: n for state, n in rows})
        return counts

    def needs_attention(self) -> list[dict[str, Any]]:
        """Operations the server refused or holds for review: never silently dropped."""
        return [
            {"seq": r[0], "op_id": r[1], "kind": r[2], "entity_id": r[3], "state": r[4],
             "reason": r[5], "data": orjson.loads(r[6])}
            for r in self.conn.execute(
                "SELECT seq, op_id, kind, entity_id, state, reason, data FROM outbox "
                "WHERE state != 'pending' ORDER BY seq"
            )
        ]

    def apply_results(self, results: Iterable[OpResult | PushResult]) -> dict[str, int]:
        """Record the server's answers; applied ops leave the outbox, others stay visible.

        An accepted visit op's result carries the visit as the archive keeps it
        (`record`; for a new visit only the columns the archive set): it is stored
        here, as a pull would, because later pulls leave out what this device's own
        pushes changed. Statements go per kind, not per op: a
        push of 100,000 visits answers in 100 batches of 1,000."""
        results = list(results)
        tally: dict[str, int] = {}
        for res in results:
            tally[res.status.value] = tally.get(res.status.value, 0) + 1
        # An answer the archive holds needs no fsync of its own: a power cut that undid
        # this commit leaves the ops pending, and the next push's replay brings the same
        # answers back (the whole commit goes or stays: SQLite's WAL). A process crash
        # loses nothing at NORMAL.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._apply_results(results)
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")
        return tally

    def _apply_results(self, results: list[OpResult | PushResult]) -> None:
        with self.transaction() as c:
            kinds = self._outbox_kinds([r.op_id for r in results])
            held: list[tuple[str, str, str]] = []
            done: list[tuple[str]] = []
            revs: dict[str, list[tuple[int, str]]] = {"customers": [], "visits": []}
            plan_revs: list[tuple[int, str]] = []
            card_nos: list[tuple[str, str]] = []
            records: list[dict[str, Any]] = []
            created: list[dict[str, Any]] = []
            for res in results:
                kind = kinds.get(res.op_id)
                if kind is None or res.status == OpStatus.received:
                    # Already recorded by an earlier, interrupted sync; or stored on
                    # the server, its verdict to come (`mark_received`).
                    continue
                if res.status == OpStatus.conflict and res.conflicts:
                    self._keep_conflict(res, kind)
                if res.status in (OpStatus.rejected, OpStatus.quarantined):
                    held.append((res.status.value, res.reason or "", res.op_id))
                    continue
                done.append((res.op_id,))
                if kind == OpKind.plan_submit:  # a plan's entity id is its day
                    if res.rev is not None:
                        plan_revs.append((res.rev, res.entity_id))
                    continue
                table = "customers" if kind.startswith("customer") else "visits"
                if res.record is not None and table == "visits":
                    (created if kind == OpKind.visit_create else records).append(res.record)
                # A card's rev is the base of the rep's next edit, so it must name a
                # revision whose content the laptop holds. After `merged` or `conflict`
                # the archive's card has changes the laptop has not pulled yet: keep the
                # old rev until the pull brings that card, or a lost pull would let the
                # next edit silently overwrite the office's value.
                elif res.rev is not None and (table == "visits" or res.status == OpStatus.accepted):
                    revs[table].append((res.rev, res.entity_id))
                if res.card_no:
                    card_nos.append((res.card_no, res.entity_id))
            c.executemany("UPDATE outbox SET state=?, reason=? WHERE op_id=?", held)
            c.executemany("DELETE FROM outbox WHERE op_id=?", done)
            c.executemany("UPDATE plans SET rev=max(rev, ?) WHERE day=?", plan_revs)
            for table, pairs in revs.items():
                c.executemany(f"UPDATE {table} SET rev=max(rev, ?) WHERE id=?", pairs)  # noqa: S608
            c.executemany("UPDATE customers SET card_no=? WHERE id=?", card_nos)
            if created:
                # The archive kept the rep's content as sent: only what it sets itself
                # changes, and rewriting just those columns leaves the search index and
                # the other indexes alone.
                c.executemany(_SERVER_SET_SQL, [_server_set(r) for r in created])
            if records:  # an edit: the archive's whole row (it may differ, e.g. a review)
                c.executemany(_UPSERT_VISIT, _visit_rows(records))
            if records or created:
                _note_served(c, ((v["customer_id"], v["started_at"]) for v in records + created))
                self._reapply_pending({r["id"] for r in records + created})

    def _outbox_kinds(self, op_ids: list[str]) -> dict[str, str]:
        """op_id -> kind of the ops still in the outbox, read in bounded IN lists."""
        kinds: dict[str, str] = {}
        for i in range(0, len(op_ids), 500):
            chunk = op_ids[i:i + 500]
            kinds.update(self.conn.execute(
                f"SELECT op_id, kind FROM outbox WHERE op_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk).fetchall())
        return kinds

    def _keep_conflict(self, res: OpResult | PushResult, kind: str) -> None:
        """The op leaves the outbox: keep the rep's values of the fields the archive
        did not take, so the rep sees what was not kept."""
        (raw,) = self.conn.execute("SELECT data FROM outbox WHERE op_id=?", (res.op_id,)).fetchone()
        data = orjson.loads(raw)
        self.conn.execute(
            "INSERT OR IGNORE INTO conflicts (op_id, entity_id, kind, fields, mine, at) "
            "VALUES (?,?,?,?,?,?)",
            (res.op_id, res.entity_id, kind, orjson.dumps(res.conflicts).decode(),
             orjson.dumps({f: data.get(f) for f in res.conflicts}).decode(),
             iso(self.clock.now())),
        )

    # --- pull ----------------------------------------------------------------

    def pool_warnings_after_sync(self, moved: bool) -> int:
        """The pool warning count `fieldvault sync` reports. Counting scans the rep's
        cards (~0.1 s at 50,000), so a sync that moved nothing reuses the count of the
        last one, if it is under an hour old: a warning moves by days, not minutes."""
        now = self.clock.now()
        if not moved:
            cached = self.get_state(POOL_WARNINGS_STATE)
            if cached:
                at, _, count = cached.partition(" ")
                if at > iso(now - POOL_WARNINGS_FRESH):
                    return int(count)
        n = self.pool_warning_count()
        self.set_state(POOL_WARNINGS_STATE, f"{iso(now)} {n}")
        return n

    def is_empty(self) -> bool:
        """No customer and no visit: a fresh vault before its first sync."""
        return self.conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM customers) AND NOT EXISTS (SELECT 1 FROM visits)"
        ).fetchone()[0] == 1

    def search_index_ready(self) -> bool:
        return self.get_state(FTS_PENDING) is None

    def defer_search_index(self) -> None:
        """From now until `build_search_index`, rows are written without being tokenized
        (the FTS triggers wait) and searches scan the tables instead. For a bulk load:
        a crash meanwhile leaves the flag set, and the next pull builds the index."""
        self.set_state(FTS_PENDING, "1")

    def build_search_index(self) -> None:
        """Index every row at once and go back to keeping the index row by row; one
        transaction, so a crash leaves the exact scan in place and the flag set."""
        # Triggers first: once the flag is gone, they alone keep the index complete.
        self.restore_indexes()
        with self.transaction() as c:
            c.execute("INSERT INTO customers_fts(customers_fts) VALUES ('rebuild')")
            c.execute("INSERT INTO visits_fts(visits_fts) VALUES ('rebuild')")
            c.execute("DELETE FROM state WHERE key=?", (FTS_PENDING,))

    def _drop_fill_indexes(self) -> None:
        """Drop the secondary indexes and the FTS triggers of the customer and visit
        tables for a first fill: each row is then one B-tree insert (~30% less vault
        work per record), and the indexes are built once, sorted, by `restore_indexes`.
        The triggers would do nothing meanwhile (they wait while `fts_pending` is set),
        but their condition costs a query per row. Their SQL is kept in `state` in the
        same transaction, so a crash meanwhile leaves them listed: the next pull, or
        the search index builder, creates them first; queries are only slower."""
        rows = self.conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND sql IS NOT NULL AND tbl_name IN ('customers', 'visits')").fetchall()
        if not rows or self.get_state(INDEXES_PENDING) is not None:
            return
        with self.transaction() as c:
            self._set_state(INDEXES_PENDING, orjson.dumps([sql for _, _, sql in rows]).decode())
            for kind, name, _ in rows:
                c.execute(f'DROP {kind.upper()} "{name}"')

    def restore_indexes(self) -> None:
        """Create the indexes and triggers a first fill dropped (or a crash left
        dropped); one transaction with the removal of their listing."""
        pending = self.get_state(INDEXES_PENDING)
        if pending is None:
            return
        with self.transaction() as c:
            for sql in orjson.loads(pending):
                for kind in ("INDEX", "TRIGGER"):
                    sql = sql.replace(f"CREATE {kind} ", f"CREATE {kind} IF NOT EXISTS ", 1)
                c.execute(sql)
            c.execute("DELETE FROM state WHERE key=?", (INDEXES_PENDING,))

    @contextmanager
    def first_fill(self, index_now: bool = True) -> Iterator[None]:
        """The window of a first sync into an empty vault: commits are not fsynced
        (synchronous=NORMAL) and this connection does not checkpoint; then FULL is
        restored, and the WAL is synced and checkpointed before the sync reports done.

        Nothing acknowledged can be lost by it. Such a sync can start again from where
        its vault stands, even from scratch: a killed process loses nothing (the OS has
        every write); a power cut may lose the last pages' commits, never consistency
        (WAL with NORMAL: SQLite's documented guarantee; frames are checksummed, and
        the vault file is only ever written by a checkpoint, which fsyncs). A visit the
        rep saves meanwhile from another process commits on its own connection, under
        FULL, which fsyncs the whole WAL: the frames before its own included.
        `index_now=False` leaves the dropped indexes to `build_search_index` (the
        detached builder), which creates them before the search index."""
        self._drop_fill_indexes()
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._served = {}
        try:
            yield
        finally:  # also when the sync failed: the next commit, under FULL, syncs the WAL
            self._served = None
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA wal_autocheckpoint = 1000")
        if index_now:
            self.restore_indexes()
        # A commit under FULL fsyncs the whole WAL, the window's frames with it
        # (rewriting the cursor as it is: a write that changes nothing).
        self.set_state("cursor", self.get_state("cursor", "") or "")
        # Then into the vault file (synced), so the WAL does not stay ~the size of the
        # scope; a reader in the way only makes this partial.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def apply_changes(
        self, customers: list[dict[str, Any]], visits: list[dict[str, Any]],
        evicted: list[str], cursor: str, epoch: str, plans: list[dict[str, Any]] | None = None,
        pool_rules: dict[str, Any] | None = None,
    ) -> None:
        """Apply one pulled page and its cursor atomically; with it the rep's plans and
        the pool rules it carried (None: the server sent none, the last ones stand)."""
        self.apply_rows(_customer_rows(customers), _visit_rows(visits),
                        {v["id"]: v["attachments"] for v in visits if v.get("attachments")},
                        evicted, cursor, epoch, plans, pool_rules)

    def apply_rows(
        self, customers: list[Any], visits: list[Any], attached: dict[str, list[dict[str, Any]]],
        evicted: list[str], cursor: str, epoch: str, plans: list[dict[str, Any]] | None = None,
        pool_rules: dict[str, Any] | None = None,
    ) -> None:
        """`apply_changes` with the cards and visits as rows of CUSTOMER_COLUMNS and
        VISIT_COLUMNS (a page pulled in rows goes in as it arrived: `vault_rows`), and
        the attachments of the visits that name any (`attached`, by visit id)."""
        rules = orjson.dumps(pool_rules, option=orjson.OPT_SORT_KEYS).decode() if pool_rules else None
        if rules == self.get_state(POOL_RULES_STATE):
            rules = None
        if not (customers or visits or evicted or plans or rules) and (
            self.get_state("cursor") == cursor and self.get_state("archive_epoch") == epoch
        ):
            return  # an empty page at the same position: nothing to write, no fsync
        with self.transaction() as c:
            if plans:
                self._apply_plans(plans)
            if rules:
                self._set_state(POOL_RULES_STATE, rules)
            for cid in evicted:
                c.execute("DELETE FROM visits WHERE customer_id=?", (cid,))
                c.execute("DELETE FROM customers WHERE id=?", (cid,))
            if customers:
                c.executemany(_UPSERT_CUSTOMER, customers)
                if self._served is not None:
                    self._served.update((r[0], r[_CUSTOMER_SERVED]) for r in customers)
            if visits:
                c.executemany(_UPSERT_VISIT, visits)
                _note_served(c, ((r[_VISIT_CUSTOMER], r[_VISIT_STARTED]) for r in visits),
                             self._served)
            if visits or evicted:
                attachments.note_pulled(c, [{"id": vid, "attachments": refs}
                                            for vid, refs in attached.items()],
                                        iso(self.clock.now()))
            touched = {r[0] for r in customers} | {r[0] for r in visits}
            if touched:
                self._reapply_pending(touched)
            self._set_state("cursor", cursor)
            self._set_state("archive_epoch", epoch)

    def _reapply_pending(self, touched: set[str]) -> None:
        """Keep the rep's not-yet-pushed edits visible on top of fresher server rows."""
        ids = list(touched)
        rows: list[tuple[int, str, str, str]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows += self.conn.execute(_PENDING_EDITS_SQL.format(",".join("?" * len(chunk))),
                                      chunk).fetchall()
        rows.sort()
        for _, kind, entity_id, data in rows:
            changes = orjson.loads(data)
            if kind == OpKind.customer_update:
                self._update_row("customers", entity_id, changes)
            elif kind == OpKind.visit_update:
                self._update_row("visits", entity_id, changes)
            elif kind == OpKind.visit_void:
                self._update_row(
                    "visits", entity_id, {"status": "void", "void_reason": changes["reason"]}
                )

    def _update_row(self, table: str, entity_id: str, changes: dict[str, Any]) -> None:
        sets = ", ".join(f"{k}=?" for k in changes)
        self.conn.execute(
            f"UPDATE {table} SET {sets} WHERE id=?",  # noqa: S608 - keys come from models
            (*changes.values(), entity_id),
        )

    # --- customers -------------------------------------------------------------

    def add_customer(self, data: CustomerCreate) -> dict[str, Any]:
        """A customer the rep developed: theirs to serve (谁开发谁服务)."""
        now = iso(self.clock.now())
        row = {
            "id": new_id(), "rev": 0, "card_no": "", **to_record(data),
            "created_by": self.rep_id, "created_at": now, "owner_rep_id": self.rep_id,
            "owned_since": now, "ownership_source": OwnershipSource.developed.value,
            "last_served_at": None, "updated_at": now,
        }
        with self.transaction() as c:
            c.execute(_UPSERT_CUSTOMER, _values(row, CUSTOMER_COLUMNS))
            self._enqueue(OpKind.customer_create, row["id"], to_record(data), 0)
        return row

    def edit_customer(self, ref: str, patch: CustomerPatch) -> dict[str, Any]:
        current = self.get_customer(ref)
        changes = patch.changes()
        with self.transaction():
            self._update_row(
                "customers", current["id"], {**changes, "updated_at": iso(self.clock.now())}
            )
            self._enqueue(OpKind.customer_update, current["id"], changes, current["rev"])
        return self.get_customer(current["id"])

    def get_customer(self, ref: str) -> dict[str, Any]:
        """A customer by id, card number, or the unique first or last digits of its id."""
        return self._get("customers", ref, extra="OR card_no = :ref")

    def _get(self, table: str, ref: str, extra: str = "") -> dict[str, Any]:
        ref = ref.strip()
        if not ref:
            raise StoreError(f"give a {table[:-1]} id")
        # Exact id / card number first: two index lookups, where the prefix
        # search below scans the table (LIKE cannot use the id index).
        for row in self._stream(
            f"SELECT * FROM {table} WHERE id = :ref {extra} LIMIT 1", {"ref": ref}  # noqa: S608
        ):
            return row
        # Ids made on a laptop start with their creation time (`new_id`): the same
        # day's records share their first digits and differ in their last ones.
        digits = ref.replace("%", "").replace("_", "")
        rows = list(self._stream(
            f"SELECT * FROM {table} WHERE id = :ref {extra} "  # noqa: S608
            f"UNION SELECT * FROM {table} WHERE id LIKE :prefix OR id LIKE :suffix LIMIT 2",
            {"ref": ref, "prefix": digits + "%", "suffix": "%" + digits},
        ))
        exact = [r for r in rows if r["id"] == ref or r.get("card_no") == ref]
        if exact:
            return exact[0]
        if len(rows) == 1 and len(ref) >= 4:
            return rows[0]
        if len(rows) > 1:
            raise StoreError(f"{ref!r} matches several {table}; give more of the id")
        raise StoreError(f"no {table[:-1]} {ref!r} on this device; `fieldvault sync` to refresh")

    # Listings: `limit=None` means every row. `iter_*` stream rows off the cursor so a
    # 50,000-card scope is never held twice; `count_*` give the total a cut view reports.

    def _stream(self, sql: str, params: list[Any] | dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Rows as dicts, read as they are consumed; the query runs (and fails) now."""
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return (dict(zip(names, row, strict=True)) for row in cursor)

    def _customer_match(self, search: str | None) -> tuple[str, list[Any], str]:
        term = (search or "").strip()
        if not term:
            return "FROM customers", [], "name"
        if len(term) >= 3 and self.search_index_ready():
            # trigram FTS needs three characters; quote so user text is not FTS syntax
            quoted = '"' + term.replace('"', '""') + '"'
            return ("FROM customers JOIN customers_fts ON customers.rowid = customers_fts.rowid "
                    "WHERE customers_fts MATCH ?", [quoted], "customers_fts.rank")
        # Shorter terms (经理: two characters) and a vault whose index is still being
        # built: the same columns, scanned.
        source, params = _exact_scan("customers", CUSTOMER_TEXT, term)
        return source, params, "name"

    def iter_customers(self, search: str | None = None,
                       limit: int | None = None) -> Iterator[dict[str, Any]]:
        source, params, order = self._customer_match(search)
        return self._stream(f"SELECT customers.* {source} ORDER BY {order} LIMIT ?",  # noqa: S608
                            [*params, -1 if limit is None else limit])

    def count_customers(self, search: str | None = None) -> int:
        source, params, _ = self._customer_match(search)
        return int(self.conn.execute(f"SELECT count(*) {source}", params).fetchone()[0])  # noqa: S608

    def _visit_match(self, customer: str | None, search: str | None) -> tuple[str, list[Any], str]:
        term = (search or "").strip()
        if len(term) >= 3 and self.search_index_ready():
            quoted = '"' + term.replace('"', '""') + '"'
            return ("FROM visits JOIN visits_fts ON visits.rowid = visits_fts.rowid "
                    "WHERE visits_fts MATCH ?", [quoted], "visits_fts.rank")
        if term:  # as for customers: short terms, or the index not built yet
            source, params = _exact_scan("visits", VISIT_TEXT, term)
            return source, params, "started_at DESC"
        if customer:
            return ("FROM visits WHERE customer_id=?", [self.get_customer(customer)["id"]],
                    "started_at DESC")
        return "FROM visits", [], "started_at DESC"

    def iter_visits(self, customer: str | None = None, search: str | None = None,
                    limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Visits, newest first (or best match first with `search`)."""
        source, params, order = self._visit_match(customer, search)
        return self._stream(f"SELECT visits.* {source} ORDER BY {order} LIMIT ?",  # noqa: S608
                            [*params, -1 if limit is None else limit])

    def list_visits(self, customer: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
        return list(self.iter_visits(customer, None, limit))

    def count_visits(self, customer: str | None = None, search: str | None = None) -> int:
        source, params, _ = self._visit_match(customer, search)
        return int(self.conn.execute(f"SELECT count(*) {source}", params).fetchone()[0])  # noqa: S608

    # --- visits ----------------------------------------------------------------

    def log_visit(self, data: VisitCreate, attach: Iterable[str] = ()) -> dict[str, Any]:
        """Record a visit locally, instantly; it goes up at the next sync. `attach`: the
        sha256 of files already in the vault (agent/attachments.py)."""
        return self._log_visits([(data, attachments.refs(self.conn, attach))])[0]

    def log_visits(self, items: list[VisitCreate]) -> list[dict[str, Any]]:
        """Record visits in one transaction: all of them are saved, or none (an import
        from a spreadsheet). Each is a normal offline visit with its outbox operation."""
        return self._log_visits([(data, []) for data in items])

    def _log_visits(self, items: list[tuple[VisitCreate, list[dict[str, Any]]]]
                    ) -> list[dict[str, Any]]:
        prepared: list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = []
        now = iso(self.clock.now())
        for data, attached in items:
            customer = self.get_customer(data.customer_id)
            payload = to_record(data)
            payload["customer_id"] = customer["id"]
            self.check_start(payload["started_at"])
            row = {
                "id": new_id(), "rev": 0, "rep_id": self.rep_id, **payload,
                "void_reason": "", "created_at": now, "updated_at": now,
            }
            prepared.append((row, payload, attached))
        with self.transaction() as c:
            for row, payload, attached in prepared:
                c.execute(_UPSERT_VISIT, _values(row, VISIT_COLUMNS))
                c.execute(
                    "UPDATE customers SET last_served_at=? WHERE id=? "
                    "AND (last_served_at IS NULL OR last_served_at < ?)",
                    (payload["started_at"], payload["customer_id"], payload["started_at"]),
                )
                attachments.link(c, row["id"], attached)
                self._enqueue(OpKind.visit_create, row["id"], payload, 0, now, attached=attached)
        return [row for row, _, _ in prepared]

    def check_start(self, started_at: str) -> None:
        """Refuse, here and now, a start the server would only hold for review: a visit
        dated ahead would keep its customer out of the pool (the server allows the
        clock skew of a signed request, so the laptop allows a little less)."""
        if started_at > iso(self.clock.now() + VISIT_AHEAD_TOLERANCE):
            raise StoreError(f"the visit starts in the future ({started_at}): check the date "
                             "and time, a visit is logged after it happened")

    def get_visit(self, ref: str) -> dict[str, Any]:
        return self._get("visits", ref)

    def _own_editable_visit(self, ref: str) -> dict[str, Any]:
        """The rep's own visit, if they may still change it: a draft, one submitted and
        not yet reviewed, or one the manager returned. Approved is read-only."""
        visit = self.get_visit(ref)
        if visit["rep_id"] != self.rep_id:
            raise StoreError("only the author can change a visit record")
        if visit["status"] == VisitStatus.approved:
            raise StoreError(f"visit {visit['id']} is approved: read-only. "
                             "Ask your manager to correct it.")
        if visit["status"] not in (VisitStatus.draft, VisitStatus.submitted, VisitStatus.returned):
            raise StoreError(
                f"visit is {visit['status']}: ask your supervisor to correct or void it"
            )
        return visit

    def edit_visit(self, ref: str, patch: VisitPatch, attach: Iterable[str] = ()) -> dict[str, Any]:
        """Correct a visit. A returned one is submitted again with the correction (the
        archive does the same when the operation arrives). `attach`: more attachments."""
        visit = self._own_editable_visit(ref)
        attached = attachments.refs(self.conn, attach)
        changes = patch.changes()
        if visit["status"] == VisitStatus.returned:
            changes.setdefault("status", VisitStatus.submitted.value)
        status = changes.get("status")
        if status and not can_transition(VisitStatus(visit["status"]), VisitStatus(status)):
            raise StoreError(f"a {visit['status']} visit cannot go back to {status}: "
                             "correct it as it is, or void it with a reason")
        from schema.models import VisitCreate

        merged = {**{k: visit[k] for k in VisitCreate.model_fields}, **changes}
        VisitCreate.model_validate(merged)  # the edited record must still be a valid visit
        if "started_at" in changes:
            self.check_start(to_record(patch)["started_at"])
        with self.transaction() as c:
            self._update_row("visits", visit["id"], {**changes, "updated_at": iso(self.clock.now())})
            attachments.link(c, visit["id"], attached)
            self._enqueue(OpKind.visit_update, visit["id"], changes, visit["rev"],
                          attached=attachments.visit_refs(c, visit["id"]))
        return self.get_visit(visit["id"])

    def void_visit(self, ref: str, void: VisitVoid) -> dict[str, Any]:
        visit = self._own_editable_visit(ref)
        with self.transaction():
            self._update_row(
                "visits", visit["id"],
                {"status": "void", "void_reason": void.reason, "updated_at": iso(self.clock.now())},
            )
            self._enqueue(OpKind.visit_void, visit["id"], to_record(void), visit["rev"])
        return self.get_visit(visit["id"])

    # --- reconcile after an archive restore ---------------------------------------

    def manifest(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(id, rev) of every customer and of this rep's own visits on the device."""
        customers = self.conn.execute("SELECT id, rev FROM customers").fetchall()
        visits = self.conn.execute(
            "SELECT id, rev FROM visits WHERE rep_id=?", (self.rep_id,)
        ).fetchall()
        return [tuple(r) for r in customers], [tuple(r) for r in visits]

    def requeue_missing(
        self, server_customers: dict[str, int], server_visits: dict[str, int], epoch: str
    ) -> dict[str, int]:
        """Queue again what a restored archive lacks or holds at an older revision.

        Only what this rep authored can be re-sent in their name: cards they
        created, their visits, and their latest view of cards they own. The
        epoch and a reset cursor are stored in the same transaction, so a crash
        neither loses the queued operations nor queues them twice.
        """
        from schema.models import CustomerCreate, VisitCreate

        counts = {"customers": 0, "visits": 0}
        card_fields = list(CustomerCreate.model_fields)
        visit_fields = list(VisitCreate.model_fields)
        with self.transaction() as c:
            # Only pending operations are on their way; a rejected or quarantined one
            # (kept for the rep's attention) must not stop the record being put back.
            queued = {r[0] for r in c.execute("SELECT entity_id FROM outbox WHERE state='pending'")}
            for row in self.db.query("SELECT * FROM customers"):
                if row["id"] in queued or row["rev"] == 0:
                    continue
                card = {k: row[k] for k in card_fields}
                have = server_customers.get(row["id"])
                if have is None and row["created_by"] == self.rep_id:
                    self._enqueue(OpKind.customer_create, row["id"],  # created when it was
                                  to_record(CustomerCreate.model_validate(card)), 0, row["created_at"])
                elif have is not None and have < row["rev"]:
                    self._enqueue(OpKind.customer_update, row["id"],
                                  to_record(CustomerCreate.model_validate(card)), have)
                else:
                    continue
                counts["customers"] += 1
            for row in self.db.query("SELECT * FROM visits WHERE rep_id=?", [self.rep_id]):
                if row["id"] in queued or row["rev"] == 0:
                    continue
                have = server_visits.get(row["id"])
                if have is not None and have >= row["rev"]:
                    continue
                fields = {k: row[k] for k in visit_fields}
                voided = row["status"] == VisitStatus.void
                if fields["status"] not in (VisitStatus.draft, VisitStatus.submitted):
                    fields["status"] = VisitStatus.submitted.value
                data = to_record(VisitCreate.model_validate(fields))
                if have is None:
                    self._enqueue(OpKind.visit_create, row["id"], data, 0, row["created_at"],
                                  attached=attachments.visit_refs(c, row["id"]))
                else:
                    data.pop("customer_id")
                    self._enqueue(OpKind.visit_update, row["id"], data, have,
                                  attached=attachments.visit_refs(c, row["id"]))
                if voided:
                    self._enqueue(OpKind.visit_void, row["id"],
                                  {"reason": row["void_reason"] or "voided"}, row["rev"])
                counts["visits"] += 1
            # A restored archive may lack blobs it had confirmed: ask again for each.
            c.execute("UPDATE blobs SET uploaded_at=NULL")
            self._set_state("archive_epoch", epoch)
            self._set_state("cursor", "")
        return counts

    def counts(self) -> dict[str, int]:
        return {
            "customers": self.conn.execute("SELECT count(*) FROM customers").fetchone()[0],
            "visits": self.conn.execute("SELECT count(*) FROM visits").fetchone()[0],
        }
