"""Storage for the master archive: the store protocols (store.py), their one SQL
implementation (sqlstore.py) and the engines that run it (sqlite.py, postgres.py).
The company's rules over it live in server/rules/."""

from .errors import ArchiveError, Conflict, Forbidden, NotFound, StorageError, Unavailable
from .store import Device, PullPage

__all__ = ["ArchiveError", "Conflict", "Device", "Forbidden", "NotFound", "PullPage",
           "StorageError", "Unavailable"]
