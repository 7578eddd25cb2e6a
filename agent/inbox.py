"""The attachment inbox: a folder under the agent home where the rep drops photos and
scanned forms. Each file is read, stored encrypted in the vault (agent/attachments.py),
and its plaintext removed; the UI then offers it for attaching to a visit.

Whoever can write into the folder must not make us read anything else: an entry is
opened with O_NOFOLLOW (a symlink is refused, never followed) and O_NONBLOCK (a FIFO
cannot hang us), and only a regular file we own with exactly one link is read (a hard
link to another file, e.g. the vault's key, is refused: removing our name for it
would be harmless, but reading it into an attachment that syncs would leak it). A file
over the size limit is refused before a byte is read. The name is checked to still
be the very file we read (same device and inode) before it is unlinked.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schema.evidence import MAX_ATTACHMENT_BYTES

from . import attachments
from .errors import StoreError

if TYPE_CHECKING:
    from .store import Store

INBOX_DIR = "inbox"
_log = logging.getLogger("fieldvault.inbox")


@dataclass
class ScanResult:
    added: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "refused": self.refused}


def inbox_dir(home: Path) -> Path:
    """The inbox folder, created 0700; refused if something else sits at its name."""
    path = home / INBOX_DIR
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise StoreError(f"{path} is not a folder of yours: remove it, and the agent makes "
                         "a private inbox folder there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700, follow_symlinks=False)
    return path


def read_regular(path: Path, follow: bool = False) -> bytes:
    """A regular file's bytes, at most the attachment limit; StoreError naming why not.
    `follow=False` (the inbox): symlinks and hard-linked files are refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise StoreError(f"{path.name} is a symbolic link: only files are taken") from None
        raise StoreError(f"cannot open {path.name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path.name} is not a regular file: only files are taken")
        if not follow and info.st_nlink != 1:
            raise StoreError(f"{path.name} has other hard links: copy the file into the "
                             "inbox instead of linking it")
        if not follow and info.st_uid != os.getuid():
            raise StoreError(f"{path.name} belongs to another user")
        attachments.check_size(info.st_size, path.name)
        chunks, total = [], 0
        while total <= MAX_ATTACHMENT_BYTES:
            part = os.read(fd, min(1 << 20, MAX_ATTACHMENT_BYTES + 1 - total))
            if not part:
                break
            chunks.append(part)
            total += len(part)
        attachments.check_size(total, path.name)  # grew while we read: still capped
        if not follow:
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise StoreError(f"{path.name} was replaced while it was read; drop it again")
        return b"".join(chunks)
    finally:
        os.close(fd)


def ingest(store: Store, path: Path) -> dict[str, Any]:
    """One inbox entry into the vault, then its plaintext removed; its reference."""
    data = read_regular(path)
    ref = attachments.add_bytes(store, data, path.name)
    path.unlink()  # only once the vault has committed it
    return ref


def scan(store: Store, home: Path) -> ScanResult:
    """Take every file in the inbox (names starting with a dot are files still being
    copied by some tools: left for the next scan). Refused entries stay, with why."""
    result = ScanResult()
    folder = inbox_dir(home)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name)[:1000]:
        if entry.name.startswith("."):
            continue
        try:
            result.added.append(ingest(store, Path(entry.path)))
        except StoreError as exc:
            result.refused.append({"name": entry.name, "reason": str(exc)})
    return result


class InboxWatcher:
    """Calls `on_change` (which scans, with whatever store its caller holds) when a file
    lands in the inbox, and once at start. watchdog runs it on its own thread."""

    def __init__(self, home: Path, on_change: Callable[[], Any]) -> None:
        self.folder = inbox_dir(home)
        self.on_change = on_change
        self._lock = threading.Lock()
        self._observer: Any = None

    def _fire(self) -> None:
        with self._lock:  # one scan at a time; events during it are covered by it
            try:
                self.on_change()
            except Exception:  # a bad file must not stop the watcher
                _log.exception("inbox scan failed")

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("closed", "moved", "created"):
                    watcher._fire()

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.folder), recursive=False)
        self._observer.start()
        self._fire()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
