"""The archive's data folder: private file modes, and a start-up check that the server
can really read and write it (before it answers a single request).

The folder holds every customer in plaintext (archive.db and its -wal/-shm), the
server's signing key and Litestream's shadow copy: the folder is 0700 and each
file 0600. A folder that another user can read is tightened when it is ours and
refused otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

from .errors import Unavailable

PRIVATE_FILE = 0o600


def _refuse(code: str, message: str) -> Unavailable:
    return Unavailable(code, message)


def secure_data_dir(data: Path) -> None:
    """Data folder without group/other access, and every file and folder in it too
    (archive.db, -wal, -shm, keys, Litestream's shadow folder and a replica kept
    beside the archive). Only bits are removed: a folder made read-only on purpose
    stays read-only."""
    try:
        st = os.lstat(data)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(data)  # the folder the operator named; its contents are not followed
    if stat.S_IMODE(st.st_mode) & 0o077:
        if st.st_uid != os.geteuid():
            raise _refuse("data_dir_shared", (
                f"the data folder {data} is readable by other users (mode "
                f"{stat.S_IMODE(st.st_mode):o}) and owned by uid {st.st_uid}, not by this "
                f"user: run `chmod 700 {data}` as its owner"))
        _tighten(data, st.st_mode)
    for dirpath, dirs, files in os.walk(data):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
                continue
            if st.st_uid == os.geteuid():
                _tighten(Path(path), st.st_mode)


def _tighten(path: Path, mode: int) -> None:
    try:
        os.chmod(path, stat.S_IMODE(mode) & 0o700, follow_symlinks=False)
    except OSError as exc:
        raise _refuse("data_dir_mode", f"cannot make {path} private (chmod): "
                      f"{exc.strerror or exc}") from None


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists: SQLite then gives its -wal
    and -shm files the same mode as the database file."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, PRIVATE_FILE))


def check_ready(data: Path, archive_file: str) -> None:
    """Raise ArchiveError with one sentence saying what to fix unless the data folder
    is writable and the archive is a FieldVault archive this process can read and
    write. Without this, `serve` started "ok" on a read-only archive and then failed
    every sync."""
    db = data / archive_file
    if not data.is_dir():
        raise _refuse("not_initialized", f"no data folder {data}: run "
                      f"`fieldvault-server init --data {data}`")
    if not db.exists():
        raise _refuse("not_initialized", f"no archive in {data}: run "
                      f"`fieldvault-server init --data {data}`")
    probe = data / f".fieldvault-write-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise _refuse("data_dir_read_only", (
            f"cannot write in the data folder {data} ({exc.strerror or exc}): the server "
            "needs it writable for the archive's journal; fix its owner, mode or mount"
        )) from None
    try:
        fd = os.open(db, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        os.close(fd)
    except OSError as exc:
        raise _refuse("archive_unusable", (
            f"cannot open the archive {db} for reading and writing ({exc.strerror or exc}): "
            "fix its owner or mode (it should be 0600, owned by the server's user)"
        )) from None
    try:
        conn = sqlite3.connect(str(db), timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        raise _refuse("archive_unusable", f"cannot open the archive {db}: {exc}") from None
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        try:
            epoch = conn.execute("SELECT value FROM meta WHERE key='archive_epoch'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise _refuse("archive_unusable", (
                f"{db} is not a readable FieldVault archive ({exc}): restore it with "
                "`fieldvault-server restore` or point --data at the right folder")) from None
        if not epoch:
            raise _refuse("archive_unusable", f"{db} is not a FieldVault archive (no epoch): "
                          f"run `fieldvault-server init --data {data}`")
        try:
            # A real write, rolled back: SQLite opens a file it cannot write read-only
            # without a word, and only the first write would tell.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE meta SET value = value WHERE key = 'archive_epoch'")
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise _refuse("archive_read_only", (
                f"cannot write the archive {db} ({exc}): fix the permissions or mount of "
                f"{data} and its -wal/-shm files, or free disk space")) from None
    finally:
        conn.close()
