"""The audit chain: an append-only, hash-chained log of security-relevant actions.

Each entry's hash covers its own content and the previous entry's hash, so
changing, removing or reordering any entry breaks every hash after it.
Triggers refuse UPDATE and DELETE; `verify` finds tampering done around them
(e.g. with a raw file editor or by dropping the triggers).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str,
               details: str) -> str:
    material = orjson.dumps([prev_hash, seq, at, actor, action, subject, details])
    return hashlib.sha256(material).hexdigest()


def append(c: sqlite3.Connection, at: str, actor: str, action: str, subject: str = "",
           details: dict[str, Any] | None = None) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number."""
    row = c.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS)
    seq = prev_seq + 1
    text = orjson.dumps(details or {}, option=orjson.OPT_SORT_KEYS).decode()
    digest = entry_hash(prev_hash, seq, at, actor, action, subject, text)
    c.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?,?)",
        (seq, at, actor, action, subject, text, prev_hash, digest),
    )
    return seq


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_broken: int | None = None
    problem: str = ""


def verify(c: sqlite3.Connection) -> Verdict:
    """Walk the chain from the start; report the first entry that does not check out."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for seq, at, actor, action, subject, details, prev, digest in c.execute(
        "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log "
        "ORDER BY seq"
    ):
        count += 1
        if seq != expected_seq:
            return Verdict(False, count, expected_seq, f"entry {expected_seq} is missing")
        if prev != prev_hash:
            return Verdict(False, count, seq, "does not link to the previous entry")
        if entry_hash(prev_hash, seq, at, actor, action, subject, details) != digest:
            return Verdict(False, count, seq, "content does not match its hash")
        prev_hash, expected_seq = digest, seq + 1
    return Verdict(True, count)
