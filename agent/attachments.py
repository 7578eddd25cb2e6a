"""Photos and signed forms, kept inside the vault: encrypted at rest with it, evicted
with their visit, wiped with it.

Content-addressed: a file is its sha256, so the same photo dropped twice or attached to
two visits is stored once. A row's `data` is NULL for an attachment a pulled visit names
that has not been downloaded yet (agent/attachment_sync.py fetches it).
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlcipher3

from schema.clock import Clock, iso
from schema.evidence import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, SHA256_HEX

from .errors import StoreError

if TYPE_CHECKING:
    from .envelopes import Sealer


class Store(Protocol):
    """What these functions need of agent/store.Store (which calls them: no import)."""

    conn: sqlcipher3.Connection
    clock: Clock
    sealer: Sealer | None

    def transaction(self) -> AbstractContextManager[sqlcipher3.Connection]: ...

_COLUMNS = "sha256, name, size, content_type"
_CONTENT_TYPE_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.+-/")


def _mb(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MB" if n % mib == 0 else f"{n / mib:.1f} MB"


def content_type_for(name: str, given: str | None = None) -> str:
    """The declared type if it is a plain `type/subtype`, else a guess by the name."""
    for candidate in (given, mimetypes.guess_type(name)[0]):
        text = (candidate or "").split(";")[0].strip().lower()
        if text.count("/") == 1 and 3 <= len(text) <= 100 and set(text) <= _CONTENT_TYPE_OK:
            return text
    return "application/octet-stream"


def clean_name(name: str) -> str:
    """A label, not a path: the last component, without control characters, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return (base or "attachment")[:200]


def check_size(size: int, name: str) -> None:
    if size <= 0:
        raise StoreError(f"{name} is empty: attach a photo or a scanned form")
    if size > MAX_ATTACHMENT_BYTES:
        raise StoreError(f"{name} is {_mb(size)}, over the {_mb(MAX_ATTACHMENT_BYTES)} limit "
                         "for one attachment: send a smaller photo or scan")


def add_bytes(store: Store, data: bytes, name: str, content_type: str | None = None,
              ) -> dict[str, Any]:
    """Store `data` in the vault (once per content); its reference."""
    name = clean_name(name)
    check_size(len(data), name)
    sha = hashlib.sha256(data).hexdigest()
    kind = content_type_for(name, content_type)
    # Sealed to the server before the vault holds it, so no photo is ever in the vault
    # without the copy a revoked laptop hands over (agent/sealed_attachments.py); one
    # the server already confirmed needs none.
    if store.sealer is not None and store.conn.execute(
            "SELECT 1 FROM blobs WHERE sha256=? AND uploaded_at IS NOT NULL",
            (sha,)).fetchone() is None:
        try:
            store.sealer.seal_attachment(sha, kind, data)
        except OSError as exc:  # a full disk, mostly: nothing was saved
            raise StoreError(f"{name} was not saved: cannot write its sealed copy "
                             f"({exc.strerror or exc}); free some disk space and try again"
                             ) from None
    with store.transaction() as c:
        c.execute(
            "INSERT INTO blobs (sha256, size, content_type, name, created_at, data) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(sha256) DO UPDATE SET data=excluded.data "
            "WHERE blobs.data IS NULL",
            (sha, len(data), kind, name, iso(store.clock.now()), data))
    return {"sha256": sha, "name": name, "size": len(data), "content_type": kind}


def read(store: Store, sha256: str) -> tuple[dict[str, Any], bytes]:
    """An attachment's reference and bytes; StoreError if absent or not downloaded."""
    row = store.conn.execute(f"SELECT {_COLUMNS}, data FROM blobs WHERE sha256=?",  # noqa: S608
                             (sha256,)).fetchone()
    if row is None:
        raise StoreError(f"no attachment {sha256[:12]} on this laptop")
    if row[4] is None:
        raise StoreError(f"attachment {row[1]} is not downloaded yet: sync when online")
    return _ref(row), bytes(row[4])


def _ref(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"sha256": row[0], "name": row[1], "size": row[2], "content_type": row[3]}


def inbox(store: Store) -> list[dict[str, Any]]:
    """Files waiting to be attached to a visit (dropped in the inbox or uploaded)."""
    rows = store.conn.execute(f"SELECT {_COLUMNS}, created_at FROM blobs "  # noqa: S608
                              "WHERE attached=0 ORDER BY created_at, name").fetchall()
    return [{**_ref(r), "created_at": r[4]} for r in rows]


def discard(store: Store, sha256: str) -> None:
    """Drop an inbox file the rep does not want (one a visit names is kept)."""
    with store.transaction() as c:
        if c.execute("DELETE FROM blobs WHERE sha256=? AND attached=0", (sha256,)).rowcount == 0:
            raise StoreError(f"no unattached file {sha256[:12]} in the inbox")
    if store.sealer is not None:
        store.sealer.drop_attachment(sha256)


def of_visit(conn: sqlcipher3.Connection, visit_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT va.sha256, va.name, b.size, b.content_type, b.data IS NOT NULL "
        "FROM visit_attachments va JOIN blobs b ON b.sha256 = va.sha256 "
        "WHERE va.visit_id=? ORDER BY va.name", (visit_id,)).fetchall()
    return [{**_ref(r), "downloaded": bool(r[4])} for r in rows]


def visit_refs(conn: sqlcipher3.Connection, visit_id: str) -> list[dict[str, Any]]:
    """What a visit's signed revision names: every attachment it has."""
    return [{k: a[k] for k in ("sha256", "name", "size", "content_type")}
            for a in of_visit(conn, visit_id)]


def refs(conn: sqlcipher3.Connection, shas: Iterable[str]) -> list[dict[str, Any]]:
    """The references of stored attachments, refusing an unknown one or too many."""
    wanted = list(dict.fromkeys(shas))
    if len(wanted) > MAX_ATTACHMENTS:
        raise StoreError(f"a visit takes at most {MAX_ATTACHMENTS} attachments "
                         f"({len(wanted)} given)")
    out = []
    for sha in wanted:
        row = conn.execute(f"SELECT {_COLUMNS}, data IS NOT NULL FROM blobs "  # noqa: S608
                           "WHERE sha256=?", (sha,)).fetchone() if SHA256_HEX.fullmatch(sha) else None
        if row is None or not row[4]:
            raise StoreError(f"no attachment {sha[:12]} on this laptop: add the file first")
        out.append(_ref(row))
    return out


def link(conn: sqlcipher3.Connection, visit_id: str, attached: list[dict[str, Any]]) -> None:
    """Inside the visit's transaction: the visit names these attachments."""
    for ref in attached:
        conn.execute("INSERT INTO visit_attachments (visit_id, sha256, name) VALUES (?,?,?) "
                     "ON CONFLICT DO NOTHING", (visit_id, ref["sha256"], ref["name"]))
        conn.execute("UPDATE blobs SET attached=1 WHERE sha256=?", (ref["sha256"],))


def note_pulled(conn: sqlcipher3.Connection, visits: list[dict[str, Any]], now: str) -> None:
    """Inside a pulled page's transaction: the attachments its visits name (bytes to be
    downloaded), then drop what no visit names any more (an evicted customer's)."""
    for visit in visits:
        for ref in visit.get("attachments") or ():
            conn.execute(
                "INSERT INTO blobs (sha256, size, content_type, name, created_at, attached) "
                "VALUES (?,?,?,?,?,1) ON CONFLICT(sha256) DO UPDATE SET attached=1",
                (ref["sha256"], ref["size"], ref["content_type"], ref["name"], now))
            conn.execute("INSERT INTO visit_attachments (visit_id, sha256, name) VALUES (?,?,?) "
                         "ON CONFLICT DO NOTHING", (visit["id"], ref["sha256"], ref["name"]))
    conn.execute("DELETE FROM visit_attachments WHERE visit_id NOT IN (SELECT id FROM visits)")
    conn.execute("DELETE FROM blobs WHERE attached=1 AND sha256 NOT IN "
                 "(SELECT sha256 FROM visit_attachments)")


def missing(store: Store) -> list[dict[str, Any]]:
    """Attachments a visit names whose bytes are not on this laptop yet."""
    rows = store.conn.execute(f"SELECT {_COLUMNS} FROM blobs WHERE data IS NULL").fetchall()  # noqa: S608
    return [_ref(r) for r in rows]


def not_uploaded(store: Store) -> list[str]:
    """Attachments a visit names that the server has not confirmed having yet."""
    return [r[0] for r in store.conn.execute(
        "SELECT sha256 FROM blobs WHERE attached=1 AND uploaded_at IS NULL AND data IS NOT NULL "
        "ORDER BY created_at")]


def chunk(store: Store, sha256: str, offset: int, size: int) -> bytes:
    """Part of an attachment, read from the vault without loading all of it."""
    row = store.conn.execute("SELECT substr(data, ?, ?) FROM blobs WHERE sha256=?",
                             (offset + 1, size, sha256)).fetchone()
    if row is None or row[0] is None:
        raise StoreError(f"no attachment {sha256[:12]} on this laptop")
    return bytes(row[0])


def mark_uploaded(store: Store, sha256: str) -> None:
    _write(store, "UPDATE blobs SET uploaded_at=? WHERE sha256=?",
                        (iso(store.clock.now()), sha256))
    if store.sealer is not None:  # the server has it: its sealed copy is needed no more
        store.sealer.drop_attachment(sha256)


def seal_unconfirmed(store: Store) -> int:
    """Write the sealed copy of every photo the server has not confirmed (those saved
    before this laptop knew the server's key, or sealed to an older one). How many."""
    if store.sealer is None:
        return 0
    rows = store.conn.execute("SELECT sha256, content_type FROM blobs "
                              "WHERE uploaded_at IS NULL AND data IS NOT NULL").fetchall()
    for sha, kind in rows:
        data = store.conn.execute("SELECT data FROM blobs WHERE sha256=?", (sha,)).fetchone()[0]
        store.sealer.seal_attachment(sha, kind, bytes(data))
    return len(rows)


def save_downloaded(store: Store, sha256: str, data: bytes) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(f"attachment {sha256[:12]} arrived damaged; it is fetched again "
                         "at the next sync")
    _write(store, "UPDATE blobs SET data=?, uploaded_at=? WHERE sha256=?",
                        (data, iso(store.clock.now()), sha256))


def _write(store: Store, sql: str, params: tuple[Any, ...]) -> None:
    with store.transaction() as c:
        c.execute(sql, params)


def counts(store: Store) -> dict[str, int]:
    row = store.conn.execute("SELECT count(*), coalesce(sum(size), 0), "
                             "coalesce(sum(attached=0), 0) FROM blobs").fetchone()
    return {"attachments": row[0], "bytes": row[1], "inbox": row[2]}


def resolve(store: Store, ref: str) -> str:
    """A sha256 from itself or a unique prefix (at least 6 hex digits)."""
    ref = ref.strip().lower()
    if len(ref) < 6 or not all(c in "0123456789abcdef" for c in ref):
        raise StoreError("give at least 6 hex digits of the attachment's sha256")
    rows = store.conn.execute("SELECT sha256 FROM blobs WHERE sha256 LIKE ? LIMIT 2",
                              (ref + "%",)).fetchall()
    if len(rows) != 1:
        raise StoreError(f"{ref} matches {'no' if not rows else 'several'} attachments")
    return str(rows[0][0])


def write_new(path: Path, data: bytes) -> None:
    """Write a copy the rep asked for, to a file that must not exist yet (0600)."""
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise StoreError(f"{path} exists: choose a new file name") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
