"""Where the archive is: the `--archive` URL (`FIELDVAULT_ARCHIVE_URL`).

- `sqlite:///absolute/path/archive.db`: a SQLite file.
- `postgresql://user[:password]@host[:port]/db` (or `postgres://`): a PostgreSQL database;
  libpq's query parameters (`?sslmode=require`, ...) pass through.
- empty: the SQLite file `archive.db` in the data folder, as before URLs existed.

A URL may carry a password: `redact` is what goes into messages and logs, and the
errors here never repeat the URL they refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .errors import ArchiveError

ARCHIVE_FILE = "archive.db"
ACCEPTED = ("--archive must be sqlite:///absolute/path/archive.db or "
            "postgresql://user@host:port/dbname (empty: archive.db in the data folder)")


@dataclass(frozen=True)
class ArchiveUrl:
    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None  # sqlite
    dsn: str | None = None  # postgresql: a libpq URL, password included when given

    def describe(self) -> str:
        """Safe to show: the file, or the URL without its password."""
        if self.kind == "sqlite":
            return f"sqlite://{self.path}"
        return redact(self.dsn or "")


def parse_archive_url(url: str | None, data_dir: Path) -> ArchiveUrl:
    text = (url or "").strip()
    if not text:
        return ArchiveUrl("sqlite", path=Path(data_dir) / ARCHIVE_FILE)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        # sqlite:///abs/path: the path is what follows the (empty) host.
        if not rest.startswith("/") or rest == "/" or "?" in rest or "#" in rest:
            raise ArchiveError("invalid_archive_url", ACCEPTED)
        return ArchiveUrl("sqlite", path=Path(rest))
    if sep and scheme in ("postgresql", "postgres"):
        dsn = "postgresql://" + rest
        try:
            parts = urlsplit(dsn)
            _ = parts.port  # raises ValueError on a port that is not a number
        except ValueError:
            raise ArchiveError("invalid_archive_url", ACCEPTED) from None
        if not parts.path.strip("/"):
            raise ArchiveError("invalid_archive_url",
                               "the --archive URL names no database: postgresql://user@host:port/dbname")
        return ArchiveUrl("postgresql", dsn=dsn)
    raise ArchiveError("invalid_archive_url", ACCEPTED)


def redact(url: str) -> str:
    """`url` with any password (in the user part or a `password=` parameter) shown as ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable archive URL>"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k.lower() == "password" else v)
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
