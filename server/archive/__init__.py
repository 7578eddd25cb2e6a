"""Storage for the master archive: one interface (`base.Archive`), SQLite backend today."""

from .base import Archive, ArchiveError, Device, PullPage
from .sqlite import SQLiteArchive

__all__ = ["Archive", "ArchiveError", "Device", "PullPage", "SQLiteArchive"]
