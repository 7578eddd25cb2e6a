"""Placeholder until the pg branch lands (helper writes the real one)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ArchiveError


@dataclass(frozen=True)
class ArchiveUrl:
    kind: str
    path: Path | None = None
    dsn: str | None = None


def parse_archive_url(url: str | None, data_dir: Path) -> ArchiveUrl:
    if not url:
        return ArchiveUrl("sqlite", path=Path(data_dir) / "archive.db")
    if url.startswith("sqlite:///"):
        return ArchiveUrl("sqlite", path=Path(url[len("sqlite://"):]))
    if url.startswith(("postgresql://", "postgres://")):
        return ArchiveUrl("postgresql", dsn=url)
    raise ArchiveError("invalid_archive_url", "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
