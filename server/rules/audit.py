"""The audit chain: an append-only, hash-chained log of security-relevant actions.

Each entry's hash covers its own content and the previous entry's hash, so
changing, removing or reordering any entry breaks every hash after it. The
database refuses UPDATE and DELETE; `verify` finds tampering done around that
(a raw file editor, dropped triggers). Appends happen inside serial writes, so
two workers never chain onto the same head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..archive.store import AuditLog

GENESIS = "0" * 64


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str,
               details: str) -> str:
    material = orjson.dumps([prev_hash, seq, at, actor, action, subject, details])
    return hashlib.sha256(material).hexdigest()


def append(log: AuditLog, at: str, actor: str, action: str, subject: str = "",
           details: dict[str, Any] | None = None) -> int:
    """Append one entry inside the caller's transaction; returns its sequence number."""
    head = log.audit_head()
    prev_seq, prev_hash = head if head else (0, GENESIS)
    seq = prev_seq + 1
    text = orjson.dumps(details or {}, option=orjson.OPT_SORT_KEYS).decode()
    log.insert_audit({"seq": seq, "at": at, "actor": actor, "action": action,
                      "subject": subject, "details": text, "prev_hash": prev_hash,
                      "hash": entry_hash(prev_hash, seq, at, actor, action, subject, text)})
    return seq


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_broken: int | None = None
    problem: str = ""


def verify(entries: Iterable[dict[str, Any]]) -> Verdict:
    """Walk the chain from the start; report the first entry that does not check out."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for e in entries:
        count += 1
        seq = e["seq"]
        if seq != expected_seq:
            return Verdict(False, count, expected_seq, f"entry {expected_seq} is missing")
        if e["prev_hash"] != prev_hash:
            return Verdict(False, count, seq, "does not link to the previous entry")
        if entry_hash(prev_hash, seq, e["at"], e["actor"], e["action"], e["subject"],
                      e["details"]) != e["hash"]:
            return Verdict(False, count, seq, "content does not match its hash")
        prev_hash, expected_seq = e["hash"], seq + 1
    return Verdict(True, count)
