"""Moving an archive to another database (`fieldvault-server migrate-archive`): open the
source and the target from their URLs, copy (server/archive/copy.py) and verify the
audit chain on the target before the copy commits.

The target is a database holding no data: an empty PostgreSQL database or a SQLite
path that does not exist yet (this gives it the archive's schema), or an archive
just made by `fieldvault-server init --archive URL`. Anything else is refused
before a byte is written: an unreachable database or wrong credentials, a schema of
another version, data already there, the source itself.

The server's keys are not in the archive but in its data folder: the server on the
new archive must run with the same `--data` (or a copy of its key files), or every
enrolled agent would refuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..archive import copy
from ..archive.engine import Engine, Tx
from ..archive.errors import ArchiveError, Conflict, StorageError, Unavailable
from ..archive.sqlstore import SqlStore
from ..archive.url import ArchiveUrl, parse_archive_url
from . import audit
from .opening import open_archive


def migrate_archive(data: Path, from_url: str | None, to_url: str,
                    progress: copy.Progress | None = None) -> dict[str, Any]:
    """Copy the archive at `from_url` (default: archive.db in `data`) into the empty
    database at `to_url`, all or nothing; returns what was copied. Raises ArchiveError
    (bad URL, same archive, schema mismatch, target not empty, copy not equal, audit
    chain broken) or StorageError (a database unreachable, wrong credentials)."""
    if not (to_url or "").strip():
        raise ArchiveError("invalid_archive_url", "give the new archive: --to "
                           "postgresql://USER@HOST:PORT/DB (or sqlite:///PATH/archive.db)")
    with _named("--from"):
        src_url = parse_archive_url(from_url, data)
    with _named("--to"):
        dst_url = parse_archive_url(to_url, data)
    if _same(src_url, dst_url):
        raise ArchiveError("same_archive", f"--from and --to both name {src_url.describe()}: "
                           "give a new, empty database as --to")
    with _named("--from"):
        source = open_archive(data, url=from_url).engine
    try:
        with _named("--to"):
            target, created = _open_target(dst_url)
    except BaseException:
        source.close()
        raise
    entries: list[int] = []

    def chain_verifies(tx: Tx) -> None:
        verdict = audit.verify(SqlStore(tx).audit_all())
        if not verdict.ok:
            raise ArchiveError("audit_chain_broken", (
                f"the audit chain does not verify on the copy (entry {verdict.first_broken}: "
                f"{verdict.problem}), nor on the source: run `fieldvault-server audit verify` "
                "on it; nothing was written"))
        entries.append(verdict.entries)

    try:
        report = copy.copy_archive(source, target, progress=progress, check=chain_verifies,
                                   where=dst_url.describe())
        with target.read() as tx:
            epoch = SqlStore(tx).meta("archive_epoch") or ""
    except BaseException:
        target.close()
        source.close()
        created()  # a SQLite file this call made is removed again
        raise
    out = {"from": src_url.describe(), "to": dst_url.describe(), "archive_epoch": epoch,
           "rows": report.rows, "tables": report.tables, "audit_entries": entries[0],
           "audit_chain": "verified", "sequences": report.sequences, "seconds": report.seconds}
    target.close()
    source.close()
    return out


# The engines' messages name `--archive`, the option of every other command.
_OPTION_PHRASES = ("check --archive", "--archive must be", "the --archive URL")


@contextlib.contextmanager
def _named(option: str) -> Iterator[None]:
    """Errors about a URL, naming the option it came from (--from or --to)."""
    def fix(text: str) -> str:
        for phrase in _OPTION_PHRASES:
            text = text.replace(phrase, phrase.replace("--archive", option))
        return text

    try:
        yield
    except ArchiveError as exc:
        exc.message = fix(exc.message)
        exc.args = (exc.message,)
        raise
    except StorageError as exc:
        raise StorageError(fix(str(exc))) from exc.__cause__


def _same(a: ArchiveUrl, b: ArchiveUrl) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "sqlite":
        assert a.path is not None and b.path is not None
        return a.path.resolve() == b.path.resolve()
    # Same host, port and database name (users and options aside): the same database.
    pa, pb = urlsplit(a.dsn or ""), urlsplit(b.dsn or "")
    return ((pa.hostname or "", pa.port or 5432, pa.path.strip("/"))
            == (pb.hostname or "", pb.port or 5432, pb.path.strip("/")))


def _nothing() -> None:
    return None


def _open_target(url: ArchiveUrl) -> tuple[Engine, Callable[[], None]]:
    """An engine on the target, its schema this server's; plus the undo of what
    opening it created (only a new SQLite file), for when the copy fails."""
    if url.kind == "postgresql":
        return _open_pg_target(url), _nothing
    from ..archive.sqlite import SQLiteEngine

    path = url.path
    assert path is not None
    try:
        return SQLiteEngine.open(path), _nothing
    except Unavailable as exc:
        if exc.code == "not_initialized":  # no file: this call makes it
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as err:
                raise StorageError(f"cannot create {path}: {err.strerror or err}") from None

            def remove() -> None:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        Path(f"{path}{suffix}").unlink()

            try:
                return SQLiteEngine.init(path), remove
            except BaseException:
                remove()
                raise
        if exc.code != "schema_outdated":
            raise
    # A file without the archive's migrations: fine only if it holds no table at all.
    tables = _tables_of(SQLiteEngine(path))
    if tables:
        raise _not_empty(url, tables)
    return SQLiteEngine.init(path), _nothing


def _open_pg_target(url: ArchiveUrl) -> Engine:
    from ..archive.postgres import PostgresEngine

    dsn = url.dsn
    assert dsn is not None
    try:
        # Reaches the database first: unreachable or wrong credentials fail here.
        return PostgresEngine.open(dsn)
    except Unavailable as exc:
        if exc.code != "not_initialized":
            raise
    tables = _tables_of(PostgresEngine(dsn, min_size=1, max_size=1))
    if tables:
        raise _not_empty(url, tables)
    return PostgresEngine.init(dsn)


def _tables_of(probe: Engine) -> list[str]:
    """The tables in a database that holds no FieldVault schema yet (closed after)."""
    try:
        with probe.read() as tx:
            return copy.schema_tables(tx)
    finally:
        probe.close()


def _not_empty(url: ArchiveUrl, tables: list[str]) -> ArchiveError:
    return Conflict("target_not_empty", (
        f"the target {url.describe()} holds tables that are not a FieldVault archive "
        f"({', '.join(tables[:4])}{', ...' if len(tables) > 4 else ''}): give a new, "
        "empty database"))


__all__ = ["migrate_archive"]
