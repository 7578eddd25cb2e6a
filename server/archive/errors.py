"""What the archive raises. No HTTP here: `server/errors.py` maps each kind to a status,
the CLIs print the message as one line.

- `ArchiveError` and its kinds: the archive refuses a request (bad input, unknown
  record, a rule says no). Nothing was written.
- `StorageError`: the storage could not do its part (disk full or read-only,
  database unreachable, wrong credentials). Nothing was written; retry later.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """A request the archive refuses; `code` is the stable machine-readable reason."""

    kind = "invalid"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(ArchiveError):
    """The request names a record that does not exist."""

    kind = "not_found"


class Conflict(ArchiveError):
    """The request clashes with what the archive holds (a duplicate, a stale order)."""

    kind = "conflict"


class Forbidden(ArchiveError):
    """A rule of the company refuses this caller (a revoked device, a used code)."""

    kind = "forbidden"


class Unauthorized(ArchiveError):
    """The caller is not who it says, or repeats a request already made (a replay)."""

    kind = "unauthorized"


class Unavailable(ArchiveError):
    """The archive cannot serve now for a reason the operator must fix (its folder
    is shared with other users, its schema is from another version)."""

    kind = "unavailable"


class StorageError(Exception):
    """The storage failed underneath (disk, network, credentials). The transaction
    was rolled back; the message is safe to show (no password)."""
