"""The archive's stores in SQL that SQLite and PostgreSQL both run (see store.py for
each method's contract). Written once: an engine supplies the transaction.

Portable on purpose: `ON CONFLICT ... DO NOTHING` rather than `INSERT OR IGNORE`,
`RETURNING` rather than lastrowid, CASE rather than the two-argument max(), no
LIMIT -1. Column names come from our own code, never from a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from schema.fields import PULL_CUSTOMER_ROW, PULL_VISIT_ROW

from .sql_attachments import AttachmentSql
from .sql_console import ConsoleSql
from .sql_ops import OpsSql
from .sql_plans import PlanSql
from .sql_pool import PoolSql
from .sql_received import ReceivedSql
from .sql_reports import ReportSql
from .sql_review import ReviewSql
from .sql_staff import StaffSql
from .sqlbase import DEVICE_COLUMNS, SqlBase, insert_row, insert_sql, update_row, with_limit
from .store import Device, FeedRow

# Feed numbers a writer takes at a time (PostgreSQL: one round trip per block).
_FEED_BLOCK = 256
# The columns of a pull page in rows (Store.customer_rows, visit_rows): a pending
# call-back reads as null, as feed.visit_for_rep sends it in records.
_CUSTOMER_ROW_SQL = ", ".join(PULL_CUSTOMER_ROW)
_VISIT_ROW_SQL = ", ".join(
    "CASE WHEN callback = 'pending' THEN NULL ELSE callback END AS callback" if c == "callback"
    else c for c in PULL_VISIT_ROW)


class SqlStore(StaffSql, ReviewSql, PoolSql, PlanSql, ReportSql, ConsoleSql, OpsSql,
               AttachmentSql, ReceivedSql, SqlBase):
    """Every store protocol over one transaction."""

    # --- meta -------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        value = self.tx.scalar("SELECT value FROM meta WHERE key=?", (key,))
        return None if value is None else str(value)

    def metas(self, keys: list[str]) -> dict[str, str]:
        return {r["key"]: str(r["value"])
                for r in self._in("SELECT key, value FROM meta WHERE key IN ({})", keys)}

    def set_meta(self, key: str, value: str) -> None:
        self.tx.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def next_card_number(self) -> int:
        number = int(self.meta("card_counter") or 0) + 1
        self.set_meta("card_counter", str(number))
        return number

    # --- directory --------------------------------------------------------------

    def insert_rep(self, rep: dict[str, Any]) -> None:
        insert_row(self.tx, "reps", rep)

    def rep(self, ref: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM reps WHERE id=? OR name=?", (ref, ref))

    def reps(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.tx.rows(*with_limit(
            "SELECT r.*, (SELECT count(*) FROM customers c WHERE c.owner_rep_id = r.id) AS customers,"
            " (SELECT count(*) FROM devices d WHERE d.rep_id = r.id) AS devices"
            " FROM reps r ORDER BY r.name", (), limit))

    def rep_names(self) -> dict[str, str]:
        return {r["id"]: r["name"] for r in self.tx.rows("SELECT id, name FROM reps")}

    def set_rep_active(self, rep_id: str, active: bool) -> None:
        self.tx.execute("UPDATE reps SET active=? WHERE id=?", (1 if active else 0, rep_id))

    def team(self, manager_id: str, without: str) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT id, tier FROM reps WHERE manager_id=? AND id != ? AND active=1 "
                            "ORDER BY created_at, id", (manager_id, without))

    def insert_enroll_code(self, code_hash: str, rep_id: str, created_at: str,
                           expires_at: str) -> None:
        self.tx.execute("INSERT INTO enroll_codes (code_hash, rep_id, created_at, expires_at) "
                        "VALUES (?,?,?,?)", (code_hash, rep_id, created_at, expires_at))

    def enroll_code(self, code_hash: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM enroll_codes WHERE code_hash=?", (code_hash,))

    def use_enroll_code(self, code_hash: str, device_id: str, at: str) -> None:
        self.tx.execute("UPDATE enroll_codes SET used_at=?, device_id=? WHERE code_hash=?",
                        (at, device_id, code_hash))

    def insert_device(self, device_id: str, rep_id: str, name: str, sign_pub: bytes,
                      box_pub: bytes, enrolled_at: str) -> None:
        self.tx.execute(
            "INSERT INTO devices (id, rep_id, name, sign_public_key, box_public_key, enrolled_at)"
            " VALUES (?,?,?,?,?,?)", (device_id, rep_id, name, sign_pub, box_pub, enrolled_at))

    def device(self, device_id: str) -> Device | None:
        row = self.tx.one(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id=?", (device_id,))
        if row is None:
            return None
        return Device(**{**row, "sign_public_key": bytes(row["sign_public_key"]),
                         "box_public_key": bytes(row["box_public_key"])})

    def device_row(self, device_id: str, lock: bool = False) -> dict[str, Any] | None:
        # SQLite has one writer at a time: the row is as good as locked already.
        suffix = " FOR UPDATE" if lock and self.tx.dialect == "postgresql" else ""
        return self.tx.one("SELECT * FROM devices WHERE id=?" + suffix, (device_id,))

    def devices(self, rep_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT d.id, d.rep_id, r.name AS rep_name, d.name, d.state, d.enrolled_at, "
               "d.last_seen_at, d.last_seq, d.revoked_at, d.lease_epoch, d.lease_issued_at, "
               "d.block_at, d.wipe_at, d.unsynced_ops, d.oldest_unsynced_at, w.issued_at AS wipe_ordered_at, "
               "w.receipt_at AS wipe_receipt_at FROM devices d JOIN reps r ON r.id = d.rep_id "
               "LEFT JOIN wipe_orders w ON w.device_id = d.id")
        if rep_id:
            return self.tx.rows(*with_limit(sql + " WHERE d.rep_id=? ORDER BY d.enrolled_at, d.id",
                                        (rep_id,), limit))
        return self.tx.rows(*with_limit(sql + " ORDER BY d.enrolled_at, d.id", (), limit))

    def set_device_seen(self, device_id: str, at: str) -> None:
        self.tx.execute("UPDATE devices SET last_seen_at=? WHERE id=?", (at, device_id))

    def revoke_devices(self, rep_id: str, at: str) -> list[str]:
        ids = [r["id"] for r in self.tx.rows(
            "SELECT id FROM devices WHERE rep_id=? AND state='active' ORDER BY id", (rep_id,))]
        self.tx.execute("UPDATE devices SET state='revoked', revoked_at=?, lease_secret=NULL, "
                        "lease_prev_secret=NULL WHERE rep_id=? AND state='active'", (at, rep_id))
        return ids

    def set_device_state(self, device_id: str, state: str, only_from: str | None = None) -> None:
        if only_from is None:
            self.tx.execute("UPDATE devices SET state=? WHERE id=?", (state, device_id))
        else:
            self.tx.execute("UPDATE devices SET state=? WHERE id=? AND state=?",
                            (state, device_id, only_from))

    def set_lease(self, device_id: str, epoch: int, secret: bytes, prev_secret: bytes | None,
                  issued_at: str, block_at: str, wipe_at: str,
                  backlog: tuple[int, str | None] | None = None) -> None:
        if backlog is None:
            self.tx.execute(
                "UPDATE devices SET lease_epoch=?, lease_secret=?, lease_prev_secret=?, "
                "lease_issued_at=?, block_at=?, wipe_at=? WHERE id=?",
                (epoch, secret, prev_secret, issued_at, block_at, wipe_at, device_id))
            return
        self.tx.execute(
            "UPDATE devices SET lease_epoch=?, lease_secret=?, lease_prev_secret=?, "
            "lease_issued_at=?, block_at=?, wipe_at=?, unsynced_ops=?, oldest_unsynced_at=? "
            "WHERE id=?",
            (epoch, secret, prev_secret, issued_at, block_at, wipe_at, *backlog, device_id))

    def set_device_backlog(self, device_id: str, unsynced_ops: int,
                           oldest_unsynced_at: str | None) -> None:
        self.tx.execute("UPDATE devices SET unsynced_ops=?, oldest_unsynced_at=? WHERE id=?",
                        (unsynced_ops, oldest_unsynced_at, device_id))

    def shrink_device_backlog(self, device_id: str, pushed: int) -> None:
        # Both sides read the row as it was: the oldest goes when nothing is left.
        self.tx.execute(
            "UPDATE devices SET unsynced_ops = CASE WHEN unsynced_ops > ? "
            "THEN unsynced_ops - ? ELSE 0 END, oldest_unsynced_at = CASE WHEN "
            "unsynced_ops > ? THEN oldest_unsynced_at ELSE NULL END "
            "WHERE id=? AND unsynced_ops IS NOT NULL", (pushed, pushed, pushed, device_id))

    def raise_last_seq(self, device_id: str, seq: int) -> None:
        self.tx.execute("UPDATE devices SET last_seq=? WHERE id=? AND last_seq < ?",
                        (seq, device_id, seq))

    def remember_nonce(self, device_id: str, nonce: str, seen_at: float,
                       last_seen: str | None = None) -> bool:
        insert = ("INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?,?,?) "
                  "ON CONFLICT DO NOTHING")
        if last_seen is not None and self.tx.dialect == "postgresql":
            # One statement (a data-modifying WITH): its count is the INSERT's.
            return self.tx.execute(
                "WITH seen AS (UPDATE devices SET last_seen_at=? WHERE id=?) " + insert,
                (last_seen, device_id, device_id, nonce, seen_at)) == 1
        fresh = self.tx.execute(insert, (device_id, nonce, seen_at)) == 1
        if last_seen is not None:
            self.set_device_seen(device_id, last_seen)
        return fresh

    def prune_nonces(self, before: float) -> None:
        self.tx.execute("DELETE FROM nonces WHERE seen_at < ?", (before,))

    def insert_hr_token(self, token_hash: str, name: str, at: str) -> None:
        self.tx.execute("INSERT INTO hr_tokens (token_hash, name, created_at) VALUES (?,?,?)",
                        (token_hash, name, at))

    def hr_token(self, token_hash: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT token_hash, name, created_at FROM hr_tokens WHERE token_hash=? "
                           "AND revoked_at IS NULL", (token_hash,))

    # --- cards ------------------------------------------------------------------

    def insert_customer(self, row: dict[str, Any]) -> None:
        insert_row(self.tx, "customers", row)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM customers WHERE id=?", (customer_id,))

    def customer_by_ref(self, ref: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM customers WHERE id=? OR card_no=?", (ref, ref))

    def update_customer(self, row: dict[str, Any]) -> None:
        update_row(self.tx, "customers", row)

    def set_last_served(self, customer_id: str, at: str) -> None:
        self.tx.defer("UPDATE customers SET last_served_at=? WHERE id=?", (at, customer_id))

    @staticmethod
    def _customers_of(owner: str | None, pool: bool) -> tuple[str, tuple[Any, ...]]:
        if pool:
            return "SELECT * FROM customers WHERE owner_rep_id IS NULL", ()
        if owner:
            return "SELECT * FROM customers WHERE owner_rep_id=?", (owner,)
        return "SELECT * FROM customers", ()

    def customers(self, owner: str | None, pool: bool = False,
                  limit: int | None = None) -> Iterator[dict[str, Any]]:
        sql, params = self._customers_of(owner, pool)
        return self.tx.stream(*with_limit(sql + " ORDER BY card_no", params, limit))

    def count_customers(self, owner: str | None, pool: bool = False) -> int:
        sql, params = self._customers_of(owner, pool)
        return int(self.tx.scalar(sql.replace("SELECT *", "SELECT count(*)", 1), params))

    def customers_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._in("SELECT * FROM customers WHERE id IN ({})", ids)

    def customer_heads(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._in("SELECT id, owner_rep_id, owned_since, created_at, last_served_at "
                        "FROM customers WHERE id IN ({})", ids)

    def customer_owners(self, ids: list[str]) -> dict[str, str | None]:
        rows = self._in("SELECT id, owner_rep_id FROM customers WHERE id IN ({})", ids)
        return {r["id"]: r["owner_rep_id"] for r in rows}

    def customer_revs(self, rep_id: str, ids: list[str]) -> dict[str, int]:
        rows = self._in("SELECT id, rev FROM customers WHERE id IN ({}) "
                        "AND (owner_rep_id=? OR created_by=?)", ids, (rep_id, rep_id))
        return {r["id"]: r["rev"] for r in rows}

    def insert_customer_revision(self, row: dict[str, Any], seq: int, author: str,
                                 device_id: str | None, op_id: str | None, at: str) -> None:
        self.tx.execute(
            "INSERT INTO customer_revisions (customer_id, rev, server_seq, snapshot, author, "
            "device_id, op_id, at) VALUES (?,?,?,?,?,?,?,?)",
            (row["id"], row["rev"], seq, orjson.dumps(row).decode(), author, device_id, op_id, at))

    def customer_revisions(self, customer_id: str, from_rev: int) -> list[dict[str, Any]]:
        rows = self.tx.rows("SELECT * FROM customer_revisions WHERE customer_id=? AND rev>=? "
                            "ORDER BY rev", (customer_id, from_rev))
        for r in rows:
            r["snapshot"] = orjson.loads(r["snapshot"])
        return rows

    def card_maker(self, customer_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT d.enrolled_at, d.rep_id FROM customer_revisions r "
                           "JOIN devices d ON d.id = r.device_id WHERE r.customer_id=? AND r.rev=1",
                           (customer_id,))

    def card_makers(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = self._in("SELECT r.customer_id, d.enrolled_at, d.rep_id FROM customer_revisions r "
                        "JOIN devices d ON d.id = r.device_id "
                        "WHERE r.rev=1 AND r.customer_id IN ({})", customer_ids)
        return {r.pop("customer_id"): r for r in rows}

    def insert_ownership(self, customer_id: str, from_rep: str | None, to_rep: str | None,
                         source: str, reason: str, by: str, at: str) -> None:
        self.tx.execute(
            "INSERT INTO ownership (customer_id, from_rep_id, to_rep_id, source, reason, by, at) "
            "VALUES (?,?,?,?,?,?,?)", (customer_id, from_rep, to_rep, source, reason, by, at))

    def ownership(self, customer_id: str) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT * FROM ownership WHERE customer_id=? ORDER BY at, id",
                            (customer_id,))

    def ownerships(self, customer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {cid: [] for cid in customer_ids}
        for r in self._in("SELECT * FROM ownership WHERE customer_id IN ({}) "
                          "ORDER BY customer_id, at, id", customer_ids):
            out[r["customer_id"]].append(r)
        return out

    # --- visits -----------------------------------------------------------------

    def insert_visit(self, row: dict[str, Any]) -> None:
        # Deferred (Tx.defer): the callers check the id is new first. Rank 0: before
        # the revisions and evidence that name it.
        self.tx.defer(insert_sql("visits", tuple(row)), tuple(row.values()), rank=0)

    def update_visit(self, row: dict[str, Any]) -> None:
        update_row(self.tx, "visits", row)

    def visit(self, visit_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM visits WHERE id=?", (visit_id,))

    def visits_by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._in("SELECT * FROM visits WHERE id IN ({})", ids)

    def visits_of_customers(self, customer_ids: list[str]) -> list[dict[str, Any]]:
        return self._in("SELECT * FROM visits WHERE customer_id IN ({})", customer_ids)

    def customer_rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        return self._in_tuples(
            f"SELECT {_CUSTOMER_ROW_SQL} FROM customers WHERE id IN ({{}})", ids)  # noqa: S608

    def visit_rows(self, ids: list[str], of_customers: bool = False) -> list[tuple[Any, ...]]:
        key = "customer_id" if of_customers else "id"
        return self._in_tuples(
            f"SELECT {_VISIT_ROW_SQL} FROM visits WHERE {key} IN ({{}})", ids)  # noqa: S608

    @staticmethod
    def _visits_of(rep_id: str | None, customer_id: str | None) -> tuple[str, tuple[Any, ...]]:
        where, params = [], []
        if rep_id:
            where.append("rep_id=?")
            params.append(rep_id)
        if customer_id:
            where.append("customer_id=?")
            params.append(customer_id)
        return (" WHERE " + " AND ".join(where)) if where else "", tuple(params)

    def visits(self, rep_id: str | None, customer_id: str | None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        where, params = self._visits_of(rep_id, customer_id)
        return self.tx.stream(*with_limit(f"SELECT * FROM visits{where} ORDER BY started_at, id",
                                      params, limit))

    def count_visits(self, rep_id: str | None, customer_id: str | None) -> int:
        where, params = self._visits_of(rep_id, customer_id)
        return int(self.tx.scalar(f"SELECT count(*) FROM visits{where}", params))

    def visit_revs(self, rep_id: str, ids: list[str]) -> dict[str, int]:
        rows = self._in("SELECT id, rev FROM visits WHERE id IN ({}) AND rep_id=?", ids, (rep_id,))
        return {r["id"]: r["rev"] for r in rows}

    def insert_visit_revision(self, row: dict[str, Any], seq: int, author: str,
                              device_id: str | None, op_id: str | None, at: str) -> None:
        self.tx.defer(
            "INSERT INTO visit_revisions (visit_id, rev, server_seq, snapshot, author, device_id, "
            "op_id, at) VALUES (?,?,?,?,?,?,?,?)",
            (row["id"], row["rev"], seq, orjson.dumps(row).decode(), author, device_id, op_id, at))

    def visit_revisions(self, visit_id: str) -> list[dict[str, Any]]:
        rows = self.tx.rows("SELECT * FROM visit_revisions WHERE visit_id=? ORDER BY rev",
                            (visit_id,))
        for r in rows:
            r["snapshot"] = orjson.loads(r["snapshot"])
        return rows

    # --- feed and ops -----------------------------------------------------------

    def append_feed(self, rep_id: str | None, kind: str, entity_id: str, customer_id: str,
                    origin: str | None = None) -> int:
        # The number is taken here and the row written later (Tx.defer): a push's rows
        # go in one executemany. Only serial writers append, one at a time.
        seq = self._next_feed_seq()
        self.tx.defer("INSERT INTO feed (seq, rep_id, kind, entity_id, customer_id, origin) "
                      "VALUES (?,?,?,?,?,?)", (seq, rep_id, kind, entity_id, customer_id, origin))
        return seq

    def _next_feed_seq(self) -> int:
        if self.tx.dialect == "sqlite":
            # The writer holds the database's one write lock: every number after the
            # highest ever handed out (AUTOINCREMENT's own record) is free.
            last = self.__dict__.get("_feed_last")
            if last is None:
                last = int(self.tx.scalar(
                    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='feed'), 0), "
                    "coalesce((SELECT max(seq) FROM feed), 0))"))
            self.__dict__["_feed_last"] = last + 1
            return last + 1
        free: list[int] = self.__dict__.setdefault("_feed_free", [])
        if not free:
            # PostgreSQL: a block of the sequence in one round trip; numbers left unused
            # are gaps, which the feed allows (it promises order, not density).
            free.extend(sorted((int(r["n"]) for r in self.tx.rows(
                "SELECT nextval(pg_get_serial_sequence('feed', 'seq')) AS n "
                "FROM generate_series(1, ?)", (_FEED_BLOCK,))), reverse=True))
        return free.pop()

    def feed(self, rep_id: str, after_seq: int, limit: int,
             skip_origin: str | None = None) -> list[FeedRow]:
        if skip_origin is None:
            return [FeedRow(**r) for r in self.tx.rows(
                "SELECT seq, kind, entity_id, customer_id FROM feed WHERE rep_id=? AND seq>? "
                "ORDER BY seq LIMIT ?", (rep_id, after_seq, limit))]
        return [FeedRow(**r) for r in self.tx.rows(
            "SELECT seq, kind, entity_id, customer_id FROM feed WHERE rep_id=? AND seq>? "
            "AND (origin IS NULL OR origin<>?) ORDER BY seq LIMIT ?",
            (rep_id, after_seq, skip_origin, limit))]

    def feed_page(self, rep_id: str, after_seq: int, limit: int,
                  skip_origin: str | None = None) -> tuple[list[FeedRow], int]:
        # One statement where a pull used two (a no-op pull reads no row and then asked
        # for the last number: on PostgreSQL a statement each, ~0.2 ms each in-process).
        # The last number comes as a row of its own (part 1) after the page (part 0).
        origin = " AND (origin IS NULL OR origin<>?)" if skip_origin is not None else ""
        rows = self.tx.tuples(
            "SELECT 0 AS part, seq, kind, entity_id, customer_id FROM (SELECT seq, kind, "
            f"entity_id, customer_id FROM feed WHERE rep_id=? AND seq>?{origin} ORDER BY seq "
            "LIMIT ?) AS page UNION ALL SELECT 1, max(seq), NULL, NULL, NULL FROM feed "
            "WHERE rep_id=? AND seq>? ORDER BY 1, 2",
            (rep_id, after_seq, *(() if skip_origin is None else (skip_origin,)), limit,
             rep_id, after_seq))
        *page, (_, last, _, _, _) = rows
        return ([FeedRow(seq=seq, kind=kind, entity_id=entity, customer_id=customer)
                 for _, seq, kind, entity, customer in page],
                after_seq if last is None else int(last))

    def feed_last(self, rep_id: str, after_seq: int) -> int:
        last = self.tx.scalar("SELECT max(seq) FROM feed WHERE rep_id=? AND seq>?",
                              (rep_id, after_seq))
        return after_seq if last is None else int(last)

    def feed_size(self, rep_id: str, after_seq: int) -> int:
        return int(self.tx.scalar("SELECT count(*) FROM feed WHERE rep_id=? AND seq>?",
                                  (rep_id, after_seq)))

    def applied_op(self, op_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT device_id, seq, result, at FROM applied_ops WHERE op_id=?",
                           (op_id,))

    def applied_ops_by_ids(self, op_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {r.pop("op_id"): r for r in self._in(
            "SELECT op_id, device_id, seq, result, at FROM applied_ops WHERE op_id IN ({})",
            op_ids)}

    def applied_ops(self, device_id: str) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT * FROM applied_ops WHERE device_id=? ORDER BY seq, op_id",
                            (device_id,))

    def record_op(self, op_id: str, device_id: str, seq: int, result: str, at: str) -> None:
        self.tx.defer("INSERT INTO applied_ops (op_id, device_id, seq, result, at) "
                      "VALUES (?,?,?,?,?)", (op_id, device_id, seq, result, at))

    # --- departures -------------------------------------------------------------

    def insert_revocation(self, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        return int(self.tx.scalar(
            f"INSERT INTO revocations ({cols}) VALUES ({', '.join('?' for _ in row)}) RETURNING id",
            tuple(row.values())))

    def revocation(self, rep_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM revocations WHERE rep_id=?", (rep_id,))

    def revocations(self) -> list[dict[str, Any]]:
        return self.tx.rows("SELECT * FROM revocations ORDER BY id")

    def revocation_by_id(self, revocation_id: int) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM revocations WHERE id=?", (revocation_id,))

    def due_revocations(self, now: str) -> list[int]:
        return [r["id"] for r in self.tx.rows(
            "SELECT id FROM revocations WHERE applied_at IS NULL AND effective_at<=? ORDER BY id",
            (now,))]

    def mark_revocation_applied(self, revocation_id: int, at: str, reassigned: str) -> None:
        self.tx.execute("UPDATE revocations SET applied_at=?, reassigned=? WHERE id=?",
                        (at, reassigned, revocation_id))

    def wipe_order(self, device_id: str) -> dict[str, Any] | None:
        return self.tx.one("SELECT * FROM wipe_orders WHERE device_id=?", (device_id,))

    def insert_wipe_order(self, order_id: str, device_id: str, at: str) -> None:
        self.tx.execute("INSERT INTO wipe_orders (order_id, device_id, issued_at) VALUES (?,?,?)",
                        (order_id, device_id, at))

    def set_wipe_receipt(self, order_id: str, at: str, receipt: str) -> None:
        self.tx.execute("UPDATE wipe_orders SET receipt_at=?, receipt=? WHERE order_id=?",
                        (at, receipt, order_id))

    # --- audit ------------------------------------------------------------------

    def audit_head(self) -> tuple[int, str] | None:
        row = self.tx.one("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return (int(row["seq"]), str(row["hash"])) if row else None

    def insert_audit(self, entry: dict[str, Any]) -> None:
        insert_row(self.tx, "audit_log", entry)

    def audit_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.tx.rows(*with_limit("SELECT * FROM audit_log ORDER BY seq DESC", (), limit))
        return rows[::-1]

    def audit_all(self) -> Iterator[dict[str, Any]]:
        return self.tx.stream("SELECT * FROM audit_log ORDER BY seq")

    def count_audit(self) -> int:
        return int(self.tx.scalar("SELECT count(*) FROM audit_log"))

    def counts(self) -> dict[str, int]:
        return {table: int(self.tx.scalar(f"SELECT count(*) FROM {table}"))
                for table in ("reps", "devices", "customers", "visits", "conflicts", "quarantine")}
