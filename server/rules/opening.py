"""Opening the archive named by `--archive URL` (or the SQLite file in `--data`)."""

from __future__ import annotations

from pathlib import Path

from schema.clock import Clock

from ..archive import datadir
from ..archive.engine import Engine
from ..archive.sqlite import ARCHIVE_FILE, SQLiteEngine
from ..archive.url import parse_archive_url
from .archive import Archive


def _engine(data: Path, url: str | None, create: bool) -> Engine:
    target = parse_archive_url(url, data)
    if target.kind == "postgresql":
        # Imported only here: psycopg costs start-up time every SQLite command would pay.
        from ..archive.postgres import PostgresEngine

        assert target.dsn is not None
        return PostgresEngine.init(target.dsn) if create else PostgresEngine.open(target.dsn)
    assert target.path is not None
    if create:
        # 0700 when we create it: the archive holds every customer in plaintext.
        target.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        datadir.secure_data_dir(target.path.parent)  # a folder that existed may be 0755
        return SQLiteEngine.init(target.path)
    return SQLiteEngine.open(target.path)


def open_archive(data: Path, clock: Clock | None = None, url: str | None = None) -> Archive:
    """The existing archive at `url` (default: archive.db in `data`). Raises
    Unavailable when there is none or its schema is another version's, StorageError
    when it cannot be reached."""
    return Archive(_engine(Path(data), url, create=False), clock, Path(data))


def init_archive(data: Path, clock: Clock | None = None, url: str | None = None) -> Archive:
    """Create or migrate the archive; idempotent."""
    engine = _engine(Path(data), url, create=True)
    Archive.initialize(engine)
    return Archive(engine, clock, Path(data))


__all__ = ["ARCHIVE_FILE", "init_archive", "open_archive"]
