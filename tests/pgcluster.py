"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port.

Real PostgreSQL, not a mock: Debian's binaries under /usr/lib/postgresql/*/bin
(`./scripts/test` installs them when missing). As root, the server runs as the
`postgres` OS user (PostgreSQL refuses to run as root) from a fresh temporary
folder owned by it, removed when the session ends, or at exit after a crash.

Clients reach it over TCP on 127.0.0.1 with SCRAM password authentication, as
an archive on another host would be reached; the superuser connects through a
Unix socket inside the cluster's folder only to create and drop databases.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from . import reaper

APP_ROLE = "fieldvault"
TEMPLATE_DB = "fv_template"
READY_TIMEOUT_S = 60.0


class PostgresMissing(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresMissing(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run ./scripts/test once, or apt-get install postgresql"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# fsync off: FOR TESTS ONLY. A crash of this throwaway cluster loses nothing we keep;
# never do this on a real archive (a power cut corrupts it).
_FAST = ("fsync = off", "synchronous_commit = off", "full_page_writes = off",
         "shared_buffers = 32MB")
# What a real archive runs with (PostgreSQL's defaults, written out): every commit
# flushed to disk before it is acknowledged. Figures are only honest with these.
_DURABLE = ("fsync = on", "synchronous_commit = on", "full_page_writes = on",
            "shared_buffers = 128MB")


class PgCluster:
    """One running cluster. `url(db)` is a libpq URL for the app role (password included:
    test-only); `create_db` makes a database owned by that role.

    `durable=False` (the tests) turns fsync off; `durable=True` (scripts/bench) keeps
    PostgreSQL's own defaults for durability and memory (fsync, synchronous_commit,
    full_page_writes on; shared_buffers 128MB), as a real archive would run."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bin = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="fv-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.port = 0
        self.password = secrets.token_urlsafe(18)
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        self._running = False

    # --- life cycle -----------------------------------------------------------

    def start(self) -> PgCluster:
        atexit.register(self.stop)
        # If this process is killed before atexit can run, the watchdog stops the
        # cluster and removes its folder (tests/reaper.py).
        reaper.watch_cluster(str(self.root), self._command(
            "pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w"))
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        self.sock.mkdir(mode=0o700)
        # The superuser's password goes through a 0600 file, never argv.
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if self._as_root:
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        pwfile.unlink()
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = _free_port()
            self._write_conf()
            if self._pg_ctl_start():
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start; see {self.data / 'server.log'}:\n"
                               + self._log_tail())
        self._running = True
        self._wait_ready()
        self._admin(
            f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD %s",
            # CREATE ROLE takes no bind parameters: quote the literal ourselves.
            literal=self.password,
        )
        return self

    def _write_conf(self) -> None:
        conf = self.data / "postgresql.conf"
        base = conf.read_text().split("# --- fieldvault tests ---")[0]
        conf.write_text(base + "# --- fieldvault tests ---\n" + "\n".join([
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.sock}'",
            *(_DURABLE if self.durable else _FAST),
            "max_connections = 200",
            "log_destination = 'stderr'",
            "logging_collector = off",
        ]) + "\n")

    def _pg_ctl_start(self) -> bool:
        log = self.data / "server.log"
        proc = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(log),
                         "-w", "-t", str(int(READY_TIMEOUT_S)), check=False)
        return proc.returncode == 0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            proc = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                capture_output=True, text=True,
            )
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready:\n" + self._log_tail())
            time.sleep(0.05)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        reaper.forget_cluster(str(self.root))

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.data / "server.log").read_text().splitlines()[-20:])
        return ""

    def _command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_root else cmd

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = self._command(tool, *args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=READY_TIMEOUT_S + 30,
                              cwd=self.root if not self._as_root else "/")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    # --- databases ------------------------------------------------------------

    def _admin(self, statement: str, literal: str | None = None) -> None:
        with psycopg.connect(host=str(self.sock), port=self.port, user="postgres",
                             dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            if literal is not None:
                quoted = sql.Literal(literal).as_string(conn)
                statement = statement.replace("%s", quoted)
            conn.execute(statement.encode())

    def url(self, dbname: str, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{APP_ROLE}:{pw}@127.0.0.1:{self.port}/{dbname}"

    def new_name(self, prefix: str = "fv") -> str:
        return f"{prefix}_{os.getpid()}_{next(self._names)}"

    def create_db(self, name: str, template: str | None = None) -> str:
        """Create database `name` owned by the app role (from `template` if given);
        returns its URL."""
        tmpl = f" TEMPLATE {template}" if template else " TEMPLATE template0"
        self._admin(f"CREATE DATABASE {name} OWNER {APP_ROLE}{tmpl}")
        return self.url(name)

    def drop_db(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start(durable: bool = False) -> PgCluster:
    """A running cluster; `durable=True` for measurements (fsync on), see PgCluster."""
    return PgCluster(durable=durable).start()

