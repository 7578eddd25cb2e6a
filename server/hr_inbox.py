"""The HR inbox: departure files dropped by the HR system into a folder.

`serve --hr-inbox DIR` watches DIR with watchdog. Each CSV or JSON file lists
departures (rep/employee id, effective date, optional successor and reason).
A file is applied whole or not at all: on success it moves to `processed/`
with a `.result.json` beside it; on any problem to `rejected/` with a
`.reason.txt`. Re-dropping a processed file is harmless: departures are
idempotent.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .archive import Archive, ArchiveError

log = logging.getLogger("fieldvault.hr_inbox")
MAX_FILE_BYTES = 1024 * 1024
_REP_KEYS = ("rep", "rep_id", "employee_id", "employee")
_WHEN_KEYS = ("effective_at", "effective_date", "date")
_SUCCESSOR_KEYS = ("successor", "reassign_to")


class InboxError(Exception):
    pass


def _pick(entry: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = entry.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def parse(path: Path) -> list[tuple[str, str, str, str | None]]:
    """(rep, reason, reassign_to, effective_at) for every entry; InboxError if any is bad."""
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise InboxError(f"file is over {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InboxError("file is not UTF-8") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InboxError(f"invalid JSON: {exc}") from None
        items = data.get("departures") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InboxError("JSON must be a list of departures or {\"departures\": [...]}")
    elif path.suffix.lower() == ".csv":
        try:
            items = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
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


def _file_away(path: Path, dest: Path, note_suffix: str, note: bytes) -> Path:
    """Move `path` into `dest` with its note (result or reason) beside it. The note is
    written first, so whoever sees the filed departure file also finds its note. A
    file of the same name dropped again (a re-sent export) gets a numbered name rather
    than overwriting the earlier one and its note."""
    dest.mkdir(exist_ok=True)
    target = dest / path.name
    for n in range(1, 100_000):
        if not target.exists():
            break
        target = dest / f"{path.stem}.{n}{path.suffix}"
    note_path = target.with_name(target.name + note_suffix)
    tmp = note_path.with_name("." + note_path.name + ".tmp")
    tmp.write_bytes(note)
    tmp.replace(note_path)
    shutil.move(str(path), target)
    return target


def process_file(archive: Archive, path: Path) -> dict[str, Any]:
    """Apply one departure file, whole or not at all, and file it away."""
    inbox = path.parent
    try:
        entries = [(rep, reason, _resolve_default(archive, rep, to), when)
                   for rep, reason, to, when in parse(path)]
        results = archive.revoke_many(entries, by=f"hr-inbox:{path.name}", source="hr-inbox")
    except (InboxError, ArchiveError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        _file_away(path, inbox / "rejected", ".reason.txt", (message + "\n").encode())
        log.warning("HR inbox: rejected %s: %s", path.name, message)
        return {"file": path.name, "status": "rejected", "reason": message}
    result = {"file": path.name, "status": "processed", "departures": results}
    _file_away(path, inbox / "processed", ".result.json",
               orjson.dumps(result, option=orjson.OPT_INDENT_2))
    log.info("HR inbox: processed %s (%d departures)", path.name, len(results))
    return result


def pending_files(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in (".csv", ".json"))


def _settled(path: Path, wait_s: float = 0.3, tries: int = 20) -> bool:
    """Wait until the file stops growing (the HR system may still be writing it)."""
    last = -1
    for _ in range(tries):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if size == last:
            return True
        last = size
        time.sleep(wait_s)
    return True


class InboxWatcher(FileSystemEventHandler):
    """Processes files already in the inbox at start, then each new one."""

    def __init__(self, archive: Archive, inbox: Path) -> None:
        self.archive = archive
        self.inbox = inbox
        self.lock = threading.Lock()
        self.observer = Observer()

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.drain()
        self.observer.schedule(self, str(self.inbox), recursive=False)
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)

    def drain(self) -> None:
        with self.lock:
            for path in pending_files(self.inbox):
                if _settled(path):
                    try:
                        process_file(self.archive, path)
                    except Exception:  # never let one file stop the watcher thread
                        log.exception("HR inbox: could not process %s; left in the inbox",
                                      path.name)

    def on_created(self, event: FileSystemEvent) -> None:
        self.drain()

    def on_moved(self, event: FileSystemEvent) -> None:
        self.drain()

    def on_closed(self, event: FileSystemEvent) -> None:
        self.drain()
