"""The archive's part for: The pool (公海), locks, duplicates, fair distribution and the scheduled jobs."""

from __future__ import annotations

from .facade import ArchiveBase


class PoolMethods(ArchiveBase):
    pass
