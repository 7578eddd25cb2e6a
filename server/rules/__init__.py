"""The company's rules over the archive's storage, backend-free (see archive.py)."""

from .archive import Archive
from .opening import init_archive, open_archive

__all__ = ["Archive", "init_archive", "open_archive"]
