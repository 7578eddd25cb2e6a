"""The HR inbox: departure files dropped by the HR system into a folder.

`serve --hr-inbox DIR` watches DIR with watchdog. Each CSV or JSON file lists
departures (rep/employee id, effective date, optional successor and reason).
A file is applied whole or not at all: on success it moves to
`DATA/hr-inbox/processed/` with a `.result.json` beside it; on any problem to
`DATA/hr-inbox/rejected/` with a `.reason.txt`. Re-dropping a processed file is
harmless: departures are idempotent.

Drop protocol: write the file under a temporary name - dot-prefixed
(`.leavers.csv`) or ending in `.tmp` or `.part` (`leavers.csv.part`) - and
rename it to its final `*.csv` / `*.json` name when it is complete. Temporary
names are never read. A file that changes while it is read (size, mtime or
content differ between the two reads) is left in the inbox for the next round,
never half-applied.

Whoever can write into the inbox is not trusted with the server's own files:
the filed copies and notes live in a folder the server owns (0700) under
--data, never inside the inbox; inbox entries are opened once with O_NOFOLLOW,
must be regular files with a single link and at most MAX_FILE_BYTES (checked
before reading), and are moved out with a rename relative to directory file
descriptors, so no symlink planted in the inbox is ever followed. What is filed is
the file that was read: a newer file renamed over the same name meanwhile goes back
to the inbox for its own round. Filed names are cut to leave room for their notes.
The inbox folder itself is resolved once at start (an admin may name it through a
symlink) and never reached through a symlink afterwards.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .archive import ArchiveError
from .rules import Archive

log = logging.getLogger("fieldvault.hr_inbox")
MAX_FILE_BYTES = 1024 * 1024
FILED_DIR = "hr-inbox"  # under --data: processed/ and rejected/ with their notes
_SUFFIXES = (".csv", ".json")
_REP_KEYS = ("rep", "rep_id", "employee_id", "employee")
_WHEN_KEYS = ("effective_at", "effective_date", "date")
_SUCCESSOR_KEYS = ("successor", "reassign_to")
_NOTE_CHARS = 300


class InboxError(Exception):
    pass


class Changed(Exception):
    """The file changed while it was read: leave it for the next round."""


def _pick(entry: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = entry.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def sanitize(text: str, limit: int = _NOTE_CHARS) -> str:
    """A short, printable excerpt: notes and logs never carry a file's raw content."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def parse_bytes(name: str, raw: bytes) -> list[tuple[str, str, str, str | None]]:
    """(rep, reason, reassign_to, effective_at) for every entry; InboxError if any is bad."""
    if len(raw) > MAX_FILE_BYTES:
        raise InboxError(f"file is over {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InboxError("file is not UTF-8") from None
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InboxError(f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
                             ) from None
        except (RecursionError, ValueError):  # e.g. nested thousands of levels deep
            raise InboxError("invalid JSON: nested too deeply or malformed") from None
        items = data.get("departures") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InboxError("JSON must be a list of departures or {\"departures\": [...]}")
    elif suffix == ".csv":
        try:
            items = list(csv.DictReader(io.StringIO(text)))
        except (csv.Error, ValueError) as exc:  # e.g. a field over the csv size limit
            raise InboxError(f"invalid CSV: {exc}") from None
    else:
        raise InboxError("only .csv and .json files are read")
    if not items:
        raise InboxError("no departures in the file")
    out = []
    for n, item in enumerate(items, start=1):
        rep = _pick(item, _REP_KEYS)
        if not rep:
            raise InboxError(f"entry {n}: no rep/employee_id")
        out.append((rep, _pick(item, ("reason",)) or "departure (HR inbox)",
                    _pick(item, _SUCCESSOR_KEYS) or "manager_or_pool",
                    _pick(item, _WHEN_KEYS)))
    return out


def _resolve_default(archive: Archive, rep: str, reassign: str) -> str:
    """No successor named: the rep's manager if there is one, else the pool."""
    if reassign != "manager_or_pool":
        return reassign
    try:
        return "manager" if archive.resolve_rep(rep).get("manager_id") else "pool"
    except ArchiveError:
        return "pool"  # the unknown rep is reported by revoke_many


def is_candidate(name: str) -> bool:
    """Final names only: hidden and temporary (*.tmp, *.part) names are still being written."""
    return not name.startswith(".") and name.lower().endswith(_SUFFIXES)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_inbox(inbox: Path) -> int:
    """A descriptor of the inbox folder itself, never through a symlink: whoever can
    write in its parent could swap it for a link to a folder of the server's."""
    try:
        return os.open(inbox, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InboxError(f"{inbox} is not a folder (a symlink?): not read") from None
        raise


def pending_files(inbox: Path) -> list[Path]:
    """Candidate entries of the inbox (not followed: symlinks are listed, to be rejected)."""
    out = []
    fd = open_inbox(inbox)
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if is_candidate(entry.name) and not entry.is_dir(follow_symlinks=False):
                    out.append(inbox / entry.name)
    finally:
        os.close(fd)
    return sorted(out)


def ensure_private_dir(path: Path) -> None:
    """A directory only the server can use: created 0700, never a symlink, ours, 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(errno.EPERM, f"{path} must be a directory owned by the server, "
                                   "not a symlink")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700, follow_symlinks=False)


@dataclass
class _Read:
    raw: bytes | None  # None: not read (not a regular file, too large, ...)
    problem: str | None  # why the file is rejected without being parsed


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size,
                                                              b.st_mtime_ns)


def _read_once(fd: int, dir_fd: int, name: str,
               after_read: Callable[[], None] | None) -> _Read:
    """Read an opened inbox file whole, and make sure it did not change meanwhile."""
    before = os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        return _Read(None, "not a regular file: drop plain CSV or JSON files")
    if before.st_nlink != 1:
        return _Read(None, "the file has other hard links: drop a file of its own")
    if before.st_size > MAX_FILE_BYTES:
        return _Read(None, f"file is over {MAX_FILE_BYTES} bytes")
    raw = os.pread(fd, MAX_FILE_BYTES + 1, 0)
    if after_read is not None:
        after_read()  # tests: the HR system writing on while we read
    after = os.fstat(fd)
    again = os.pread(fd, MAX_FILE_BYTES + 1, 0)
    try:
        path_now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise Changed from None
    if (not _same(before, after) or not _same(after, path_now) or len(raw) != before.st_size
            or hashlib.sha256(raw).digest() != hashlib.sha256(again).digest()):
        raise Changed
    return _Read(raw, None)


def _write_note(dest_fd: int, name: str, note: bytes) -> None:
    """A new file only the server can read; never an existing file, never through a link."""
    tmp = f".{name}.tmp"
    try:
        os.unlink(tmp, dir_fd=dest_fd)  # a leftover of a crash in our own folder
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dest_fd)
    try:
        os.write(fd, note)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dest_fd, dst_dir_fd=dest_fd)


# Room in a 255-byte name for our note's `.NAME.result.json.tmp` and a re-send number.
_FILED_NAME_BYTES = 200


def _fits(name: str) -> str:
    """`name`, cut (keeping its suffix, with a digest of the whole) when our note beside
    it would not fit the file system's 255-byte names."""
    raw = os.fsencode(name)
    if len(raw) <= _FILED_NAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    tail = os.fsencode(f"~{hashlib.sha256(raw).hexdigest()[:12]}{dot}{suffix}")[-60:]
    head = os.fsencode(stem)[: _FILED_NAME_BYTES - len(tail)]
    return (head + tail).decode("utf-8", "ignore")


def _numbered(name: str, n: int) -> str:
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{n}{dot}{suffix}"


def _free_name(dest_fd: int, name: str) -> str:
    """`name` (cut to fit beside its note), or a numbered variant when a file of that name
    was filed before (a re-sent export), so the earlier file and its note are kept."""
    base = _fits(name)
    candidate = base
    for n in range(1, 100_000):
        try:
            os.stat(candidate, dir_fd=dest_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
        candidate = _numbered(base, n)
    raise OSError(errno.EEXIST, f"too many files named {name}")


def _as_text(name: str) -> str:
    """The name as valid UTF-8 for the JSON note (a name that is not UTF-8 arrives with
    surrogate escapes, which JSON cannot carry)."""
    return os.fsencode(name).decode("utf-8", "replace")


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _copy_in(fd: int, dest_fd: int, target: str) -> None:
    """Our own copy of what we opened (nothing for an entry we never opened)."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600, dir_fd=dest_fd)
    try:
        if fd >= 0 and stat.S_ISREG(os.fstat(fd).st_mode):
            offset = 0
            while chunk := os.pread(fd, 1 << 20, offset):
                os.write(out, chunk)
                offset += len(chunk)
        os.fsync(out)
    finally:
        os.close(out)


def _give_back(dest_fd: int, target: str, inbox_fd: int, name: str) -> None:
    """Return an entry we moved by mistake to the inbox, under its name or a numbered
    variant, never over another file (link() does not replace; a directory cannot be
    linked, so it is renamed to a name found free)."""
    for n in range(100_000):
        back = name if n == 0 else _numbered(name, n)
        try:
            os.link(target, back, src_dir_fd=dest_fd, dst_dir_fd=inbox_fd,
                    follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            try:
                os.stat(back, dir_fd=inbox_fd, follow_symlinks=False)
                continue
            except FileNotFoundError:
                os.rename(target, back, src_dir_fd=dest_fd, dst_dir_fd=inbox_fd)
                return
        os.unlink(target, dir_fd=dest_fd)
        return
    raise OSError(errno.EEXIST, f"too many files named {name}")


def _move_out(inbox_fd: int, name: str, fd: int, judged: tuple[int, int], dest_fd: int,
              target: str) -> None:
    """Move the inbox entry we judged (`judged`: its device and inode) into our folder.
    rename() moves the entry itself (a symlink stays a symlink, nothing is followed).
    If the name now holds another file (HR re-sent it after our checks), that file goes
    back for its own round and ours is filed from the descriptor we read. Across file
    systems, copy what we opened and remove the inbox name only if it still is ours."""
    try:
        os.rename(name, target, src_dir_fd=inbox_fd, dst_dir_fd=dest_fd)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_in(fd, dest_fd, target)
        try:
            if _identity(os.stat(name, dir_fd=inbox_fd, follow_symlinks=False)) == judged:
                os.unlink(name, dir_fd=inbox_fd)
        except FileNotFoundError:
            pass
        return
    if _identity(os.stat(target, dir_fd=dest_fd, follow_symlinks=False)) != judged:
        _give_back(dest_fd, target, inbox_fd, name)
        _copy_in(fd, dest_fd, target)


def filed_root(archive: Archive) -> Path:
    """DATA/hr-inbox: the server's own folder, never inside the inbox."""
    if archive.data_dir is None:
        raise ValueError("this archive has no data folder: pass `filed`")
    return archive.data_dir / FILED_DIR


def _judge_link(inbox_fd: int, name: str) -> tuple[int, int]:
    """The identity of the symlink we refuse to open; if the name no longer holds a
    symlink, it changed under us: the next round judges what is there now."""
    try:
        st = os.stat(name, dir_fd=inbox_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise Changed from None
    if not stat.S_ISLNK(st.st_mode):
        raise Changed
    return _identity(st)


def process_file(archive: Archive, path: Path, *, filed: Path | None = None,
                 after_read: Callable[[], None] | None = None) -> dict[str, Any]:
    """Apply one departure file, whole or not at all, and file it away under `filed`
    (default DATA/hr-inbox). Status `changed`: it was being written; left in the inbox."""
    inbox, name = path.parent, path.name
    root = filed or filed_root(archive)
    shown = sanitize(name, 120)
    inbox_fd = open_inbox(inbox)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=inbox_fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return {"file": name, "status": "gone"}
            if exc.errno != errno.ELOOP:
                raise
            fd = -1  # a symlink: rejected, never opened
        try:
            judged = _identity(os.fstat(fd)) if fd >= 0 else _judge_link(inbox_fd, name)
            if fd < 0:
                read = _Read(None, "a symbolic link: drop plain CSV or JSON files")
            else:
                read = _read_once(fd, inbox_fd, name, after_read)
        except Changed:
            log.info("HR inbox: %s changed while read; left for the next round", shown)
            if fd >= 0:
                os.close(fd)
            return {"file": name, "status": "changed"}
        try:
            return _apply_and_file(archive, name, read, root, inbox_fd, fd, judged)
        finally:
            if fd >= 0:
                os.close(fd)
    finally:
        os.close(inbox_fd)


def _apply_and_file(archive: Archive, name: str, read: _Read, root: Path, inbox_fd: int,
                    fd: int, judged: tuple[int, int]) -> dict[str, Any]:
    shown = sanitize(name, 120)
    try:
        if read.problem or read.raw is None:
            raise InboxError(read.problem or "unreadable")
        entries = [(rep, reason, _resolve_default(archive, rep, to), when)
                   for rep, reason, to, when in parse_bytes(name, read.raw)]
        results = archive.revoke_many(entries, by=f"hr-inbox:{shown}", source="hr-inbox")
    except (InboxError, ArchiveError) as exc:
        message = sanitize(getattr(exc, "message", None) or str(exc))
        outcome, note_suffix, note = "rejected", ".reason.txt", (message + "\n").encode()
        result: dict[str, Any] = {"file": _as_text(name), "status": "rejected",
                                  "reason": message}
    else:
        result = {"file": _as_text(name), "status": "processed", "departures": results}
        outcome, note_suffix = "processed", ".result.json"
        note = orjson.dumps(result, option=orjson.OPT_INDENT_2)
    dest = root / outcome
    ensure_private_dir(root)
    ensure_private_dir(dest)
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        target = _free_name(dest_fd, name)
        # The note first: whoever sees the filed file also finds its note.
        _write_note(dest_fd, target + note_suffix, note)
        _move_out(inbox_fd, name, fd, judged, dest_fd, target)
    finally:
        os.close(dest_fd)
    result["filed_as"] = str(dest / target)
    if outcome == "rejected":
        log.warning("HR inbox: rejected %s: %s", shown, result["reason"])
    else:
        log.info("HR inbox: processed %s (%d departures)", shown, len(result["departures"]))
    return result


class InboxWatcher(FileSystemEventHandler):
    """Processes files already in the inbox at start, then each one renamed in or closed
    after writing (never on creation alone: a file just created is still being written)."""

    def __init__(self, archive: Archive, inbox: Path, filed: Path | None = None) -> None:
        self.archive = archive
        self.inbox = inbox
        self.filed = filed or filed_root(archive)
        self.lock = threading.Lock()
        self.observer = Observer()

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        # An admin may name the inbox through a symlink: resolved once, here; the
        # folder is never reached through a link after that.
        self.inbox = Path(os.path.realpath(self.inbox))
        ensure_private_dir(self.filed)
        self.drain()
        self.observer.schedule(self, str(self.inbox), recursive=False)
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)

    def drain(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        with self.lock:
            try:
                paths = pending_files(self.inbox)
            except (InboxError, OSError) as exc:  # swapped for a link, removed, ...
                log.warning("HR inbox: %s", exc)
                return results
            for path in paths:
                try:
                    results.append(process_file(self.archive, path, filed=self.filed))
                except Exception:  # never let one file stop the watcher thread
                    log.exception("HR inbox: could not process %s; left in the inbox",
                                  sanitize(path.name, 120))
        return results

    def on_moved(self, event: FileSystemEvent) -> None:
        self.drain()

    def on_closed(self, event: FileSystemEvent) -> None:
        self.drain()
