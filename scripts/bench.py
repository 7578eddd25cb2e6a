"""FieldVault performance figures: `scripts/bench [--scale S]` (docs/BENCHMARKS.md).

Prints one JSON line per figure on stdout (progress goes to stderr). Every
figure carries a ratio against a baseline measured in the same run:

- baseline: a raw SQLCipher bulk insert of the same rows: a file opened with a
  raw 256-bit key by the agent's own `open_vault` (so with the agent's pragmas:
  WAL, synchronous=FULL, temp_store=MEMORY, its page cache), the agent's schema
  applied by its own migrations (same tables, indexes and trigram FTS triggers),
  one `executemany` per table in one transaction; run just before and just after
  the timed part, and averaged;
- initial_sync: a fresh agent pulls a 100k-record scope (20k customers + 80k
  visits) from a real `fieldvault-server serve` on 127.0.0.1, through HTTP;
- push: 100k visits logged offline with `Store.log_visit`, then pushed (timed);
- noop_sync: median of `sync()` with nothing new against an archive of 1M
  visits and one of 10k visits, both served at once and synced alternately
  (ratio large/small);
- log_visit: p50/p95 of `Store.log_visit` on a device holding the full scope,
  against a raw single-row INSERT + COMMIT of the same visits;
- startup_*: median wall (and CPU) time of `fieldvault status` on that enrolled
  device, `fieldvault --help` and `fieldvault-server --help`, each as a ratio to
  a bare `python -c pass` timed in the same rounds;
- console, ui (sections, scripts/bench_pages.py; `--skip-pages` leaves them out):
  median and p95 of every console page at 100k customers / 1M visits (target
  300 ms) and of the rep's UI pages at 20k + 80k records (200 ms; search 50 ms),
  both times `--scale`, each with pass/fail.

Archives are built with direct SQL that follows the archive schema (customer
and visit rows, revisions with snapshots, ownership and feed rows) so that
setup is quick; what is timed always goes through the library and HTTP. The
server runs with `--replica none` unless `--litestream` is given.

PostgreSQL (issue 9; `--backends sqlite` leaves it out): a throwaway cluster
(tests/pgcluster.py) started with fsync ON, PostgreSQL's durability defaults,
holding a copy of each SQLite archive made by migrate-archive's library
(server/rules/moving.py: one transaction, counts, digests and the audit chain
verified), then VACUUM ANALYZE. Its server is `fieldvault-server serve --archive
URL --workers 2` (URL given through FIELDVAULT_ARCHIVE_URL, not argv); the
SQLite server stays one worker, WAL with synchronous=NORMAL (no fsync per commit).
initial_sync, push and noop_sync run against both, each PostgreSQL figure
carrying `ratio_to_sqlite`; a last `postgresql_vs_sqlite` line sums them up.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import sqlcipher3
from psycopg import sql as pg_sql
from sqlite_utils import Database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import search_index  # noqa: E402
from agent import sync as sync_mod  # noqa: E402
from agent.enroll import enroll  # noqa: E402
from agent.home import AgentConfig  # noqa: E402
from agent.store import CUSTOMER_COLUMNS, VISIT_COLUMNS, Store, open_vault  # noqa: E402
from schema.clock import iso  # noqa: E402
from schema.migrations.agent import migrations as agent_migrations  # noqa: E402
from schema.models import VisitCreate  # noqa: E402
from scripts import bench_pages  # noqa: E402
from server.archive.sqlite import ARCHIVE_FILE  # noqa: E402
from server.rules import Archive, init_archive, open_archive  # noqa: E402
from server.rules.moving import migrate_archive  # noqa: E402
from tests import pgcluster  # noqa: E402
from tests.harness import ServerProcess  # noqa: E402

ARCHIVE_CUSTOMER_COLUMNS = CUSTOMER_COLUMNS
ARCHIVE_VISIT_COLUMNS = (*VISIT_COLUMNS[:4], "device_id", *VISIT_COLUMNS[4:])
PURPOSES = ("new_development", "market_research", "collection", "service", "complaint",
            "order", "other")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
CITIES = ("上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "Shanghai", "Suzhou")
COMPANY_WORDS = ("华联", "恒通", "金桥", "宏达", "新源", "Pacific", "Golden Bridge", "Evergreen",
                 "Sunrise", "Harbor")
INDUSTRIES = ("retail", "manufacturing", "logistics", "food", "medical", "construction")
NOTES = (
    "客户对价格敏感，希望下季度获得批量折扣。",
    "Decision maker travels often; call before 10am.",
    "采购流程需要三份报价，财务审批周期约两周。",
    "Asked for samples of the new product line and a delivery schedule.",
    "竞争对手上个月报价低5%，但交货期较长。",
    "Long-standing account, pays on time, wants quarterly reviews.",
)
SUMMARIES = (
    "拜访采购经理，介绍新产品线，客户对节能型号很感兴趣，约定下周提供报价单。",
    "Met the purchasing manager; walked through the spring catalogue and agreed on a trial "
    "order of 200 units pending a revised delivery schedule.",
    "收回上月货款八万元，客户反映包装破损问题，已记录并承诺三日内回复。",
    "Service visit: replaced two faulty units under warranty, customer satisfied, asked "
    "about an extended maintenance contract.",
    "市场调研：走访三家门店，了解竞品陈列与价格，店长建议增加促销物料。",
    "Complaint follow-up: late delivery in March; explained the logistics change and "
    "offered a 3% credit on the next invoice.",
    "新客户开发：首次拜访，客户目前使用竞品，对我方售后响应速度有兴趣，留下资料。",
    "Order visit: confirmed the Q3 order (1,200 units), split into three deliveries.",
)
OUTCOMES = ("约定下周报价", "Trial order agreed", "收回货款", "Follow-up call scheduled",
            "", "客户需内部讨论")
FEEDBACK = ("价格偏高", "Likes the new model", "", "交货期需缩短", "Wants better payment terms")
COMPETITORS = ("", "海尔", "Acme Corp", "美的", "")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(figure: dict[str, Any]) -> None:
    figure["loadavg"] = [round(x, 2) for x in os.getloadavg()]  # how busy the machine was
    print(json.dumps(figure, ensure_ascii=False), flush=True)


# --- data ---------------------------------------------------------------------


class Gen:
    """Deterministic, realistic-looking records (Chinese and English text)."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        # Recent enough that no card is due back to the pool (the server's pool job
        # would otherwise move the whole scope out when it starts).
        self.t0 = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
        self.card = 0
        self.templates: list[dict[str, Any]] = []

    def new_id(self) -> str:
        return f"{self.rnd.getrandbits(128):032x}"

    def customer(self, owner: str | None) -> dict[str, Any]:
        r = self.rnd
        self.card += 1
        at = iso(self.t0 + timedelta(minutes=self.card))
        name = (r.choice(CITIES) + r.choice(COMPANY_WORDS) + ("有限公司" if r.random() < 0.6
                                                             else " Trading Co."))
        return {
            "id": self.new_id(), "rev": 1, "card_no": f"FV{self.card:07d}",
            "name": f"{name} {self.card}", "decision_maker": r.choice(SURNAMES) + "经理",
            "grade": r.choice("ABC"), "address": f"{r.choice(CITIES)}市 {r.randint(1, 999)}号",
            "phone": f"+86 21 {20000000 + self.card}", "industry": r.choice(INDUSTRIES),
            "size": r.choice(("small", "medium", "large")), "needs": r.choice(NOTES),
            "financial_status": "good", "business_status": "", "purchasing_status": "",
            "credit_status": r.choice(("A", "B", "")), "external_relations": "",
            "business_contact": r.choice(SURNAMES) + "先生", "notes": r.choice(NOTES),
            "created_by": "admin", "created_at": at, "owner_rep_id": owner,
            "owned_since": at if owner else None,
            "ownership_source": "assigned" if owner else "pool",
            "last_served_at": None, "updated_at": at, "area": "", "locked": 0,
        }

    def visit_fields(self) -> dict[str, Any]:
        r = self.rnd
        start = self.t0 + timedelta(days=r.randint(0, 18), hours=r.randint(0, 10))
        return {
            "planned": r.random() < 0.3, "started_at": start,
            "ended_at": start + timedelta(minutes=r.randint(20, 120)),
            "location": r.choice(CITIES), "purpose": r.choice(PURPOSES),
            "summary": r.choice(SUMMARIES), "outcome": r.choice(OUTCOMES),
            "feedback": r.choice(FEEDBACK), "competitors": r.choice(COMPETITORS),
            "next_at": start + timedelta(days=7), "next_place": "",
            "next_content": r.choice(("", "送样品", "Send revised quote")),
        }

    def _visit_template(self) -> dict[str, Any]:
        f = self.visit_fields()
        at = iso(f["started_at"] + timedelta(hours=3))
        return {
            **f, "planned": int(f["planned"]), "started_at": iso(f["started_at"]),
            "ended_at": iso(f["ended_at"]), "next_at": iso(f["next_at"]), "status": "submitted",
            "void_reason": "", "created_at": at, "updated_at": at, "review_comment": "",
            "reviewed_by": None, "reviewed_at": None, "callback": None, "callback_note": "",
        }

    def visit(self, customer: dict[str, Any], rep: str, device: str | None) -> dict[str, Any]:
        """An archived visit row; the fields come from a pool of 4096 (datetime formatting
        would otherwise dominate building a 1M-visit archive)."""
        if not self.templates:
            self.templates = [self._visit_template() for _ in range(4096)]
        return {"id": self.new_id(), "rev": 1, "customer_id": customer["id"], "rep_id": rep,
                "device_id": device, **self.rnd.choice(self.templates)}


# --- the archive, built by direct SQL --------------------------------------------


class ArchiveBuilder:
    """Bulk-load an archive: the same rows the library would write, much faster."""

    def __init__(self, data: Path) -> None:
        self.archive = init_archive(data)
        self.conn = sqlite3.connect(str(data / ARCHIVE_FILE), isolation_level=None)
        self.conn.execute("PRAGMA synchronous = OFF")  # setup only; the server uses its own
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA cache_size = -200000")
        self.seq = 0

    def add_rep(self, name: str) -> str:
        return str(self.archive.add_rep(name)["id"])

    def load(self, customers: list[dict[str, Any]], visits: list[dict[str, Any]]) -> None:
        """Customers, then visits, each with its revision and feed row, in one transaction.

        Feed sequence numbers follow the order given; table rows go in sorted by key and
        the secondary indexes are dropped and rebuilt (same SQL), so that loading a
        million random-id rows is a sequence of appends instead of random B-tree writes.
        """
        c = self.conn
        c.execute("BEGIN")
        indexes = c.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND "
            "tbl_name IN ('customers','ownership','feed','visits')"
        ).fetchall()
        for name, _ in indexes:
            c.execute(f'DROP INDEX "{name}"')
        seq = c.execute("SELECT coalesce(max(seq), 0) FROM feed").fetchone()[0]
        feed: list[tuple[Any, ...]] = []
        crevs: list[tuple[Any, ...]] = []
        for r in customers:
            seq += 1
            feed.append((seq, r["owner_rep_id"], "customer", r["id"], r["id"]))
            crevs.append((r["id"], 1, seq, orjson.dumps(r).decode(), "admin", None, None,
                          r["created_at"]))
        owner = {r["id"]: r["owner_rep_id"] for r in customers}
        vrevs: list[tuple[Any, ...]] = []
        for r in visits:
            seq += 1
            feed.append((seq, owner[r["customer_id"]], "visit", r["id"], r["customer_id"]))
            vrevs.append((r["id"], 1, seq, orjson.dumps(r).decode(), r["rep_id"],
                          r["device_id"], None, r["updated_at"]))
        cols = ARCHIVE_CUSTOMER_COLUMNS
        c.executemany(
            f"INSERT INTO customers ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            sorted(tuple(r[k] for k in cols) for r in customers),
        )
        c.executemany(
            "INSERT INTO ownership (customer_id, from_rep_id, to_rep_id, source, reason, by, at)"
            " VALUES (?,?,?,?,?,?,?)",
            [(r["id"], None, r["owner_rep_id"], r["ownership_source"], "card created", "admin",
              r["created_at"]) for r in customers],
        )
        c.executemany(
            "INSERT INTO customer_revisions (customer_id, rev, server_seq, snapshot, author, "
            "device_id, op_id, at) VALUES (?,?,?,?,?,?,?,?)", sorted(crevs),
        )
        cols = ARCHIVE_VISIT_COLUMNS
        vrows: list[tuple[Any, ...]] = [tuple(r[k] for k in cols) for r in visits]
        vrows.sort(key=lambda t: str(t[0]))
        c.executemany(
            f"INSERT INTO visits ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vrows,
        )
        c.executemany(
            "INSERT INTO visit_revisions (visit_id, rev, server_seq, snapshot, author, "
            "device_id, op_id, at) VALUES (?,?,?,?,?,?,?,?)", sorted(vrevs),
        )
        c.executemany(
            "INSERT INTO feed (seq, rep_id, kind, entity_id, customer_id) VALUES (?,?,?,?,?)",
            feed,
        )
        for _, sql in indexes:
            c.execute(sql)
        counter = int(c.execute("SELECT value FROM meta WHERE key='card_counter'").fetchone()[0])
        c.execute("UPDATE meta SET value=? WHERE key='card_counter'",
                  (str(counter + len(customers)),))
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("ANALYZE")
        self.conn.close()


def scope(gen: Gen, rep: str, n_customers: int, n_visits: int
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    customers = [gen.customer(rep) for _ in range(n_customers)]
    visits = [gen.visit(customers[i % n_customers], rep, None) for i in range(n_visits)]
    served: dict[str, str] = {}  # as the archive keeps it: the latest visit's start
    for v in visits:
        served[v["customer_id"]] = max(served.get(v["customer_id"], ""), v["started_at"])
    for c in customers:
        c["last_served_at"] = served.get(c["id"])
    return customers, visits


# --- the agent ---------------------------------------------------------------------


class Agent:
    """An enrolled agent home driven through the library, as `fieldvault` does."""

    def __init__(self, home: Path, server: ServerProcess, archive: Archive, rep: str):
        self.home = home
        code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
        self.config: AgentConfig = enroll(home, server.url, code, device_name="bench")
        self.store = Store.open(home, self.config.rep_id)
        self.transport = sync_mod.open_transport(home, self.config)

    def sync(self) -> sync_mod.SyncReport:
        return sync_mod.sync(self.store, self.transport)

    def close(self) -> None:
        self.transport.close()
        self.store.close()


# --replica for serve: "none" measures the sync core alone; None (--litestream) keeps the
# serve default, the archive streamed by Litestream to a file replica.
REPLICA: list[str | None] = ["none"]


PG_WORKERS = 2


@contextmanager
def serving(data: Path, url: str | None = None) -> Iterator[ServerProcess]:
    """`fieldvault-server serve` on the SQLite archive in `data` or, given `url`, on that
    PostgreSQL archive with PG_WORKERS workers (the harness passes the URL, password
    included, through the environment rather than argv)."""
    server = ServerProcess(data, replica=REPLICA[0], archive_url=url,
                           workers=PG_WORKERS if url else 1).start(timeout=60)
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL --------------------------------------------------------------------


class Postgres:
    """The run's PostgreSQL: a throwaway cluster with fsync on (tests/pgcluster.py,
    durable=True), holding copies of the SQLite archives the bench builds."""

    def __init__(self) -> None:
        log("PostgreSQL: starting a throwaway cluster (fsync on)")
        self.cluster = pgcluster.start(durable=True)
        self.version = self.cluster.bin.parent.name

    def copy_of(self, data: Path) -> tuple[Path, str]:
        """A PostgreSQL archive equal to the SQLite one in `data`, made by migrate-archive's
        library, then VACUUM ANALYZE (as ArchiveBuilder ANALYZEs the SQLite one); and an
        empty data folder for its server's own keys."""
        url = self.cluster.create_db(self.cluster.new_name("bench"))
        t = time.perf_counter()
        report = migrate_archive(data, None, url)
        with psycopg.connect(url, autocommit=True) as conn:
            # Statistics now, rather than whenever autovacuum comes by during a timed
            # part; but only of tables holding rows, as autovacuum would. A table that
            # VACUUM saw empty is planned as empty (a sequential scan), and a statement
            # psycopg prepared while it was small keeps that plan while it grows: the
            # applied_ops lookup of a push did 2,000 scans of 1M rows in all over 2,000 ops.
            full = [t for t, n in report["tables"].items() if n]
            conn.execute(f"VACUUM (ANALYZE) {', '.join(full)}".encode())
        log(f"  copied {report['rows']} rows to PostgreSQL in {time.perf_counter() - t:.1f}s")
        pg_data = data.with_name(f"{data.name}-pg")
        pg_data.mkdir(mode=0o700)
        return pg_data, url

    def stop(self) -> None:
        self.cluster.stop()


def pg_plans(url: str, rep: str) -> dict[str, str]:
    """EXPLAIN of the pull's feed query (custom and generic plan: psycopg prepares a
    statement after 5 runs, and PostgreSQL may then switch to a generic plan) and of
    the idempotency lookup `applied_ops` by op_id, as one-line summaries."""
    feed = ("SELECT seq, kind, entity_id, customer_id FROM feed WHERE rep_id=$1 AND seq>$2 "
            "ORDER BY seq LIMIT $3")
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        def plan(sql: str) -> str:
            rows = conn.execute(sql.encode()).fetchall()
            return " | ".join(str(r[0]).strip() for r in rows)

        conn.execute(f"PREPARE feed_q(text, bigint, bigint) AS {feed}".encode())
        lit = sql_literal(conn, rep)
        out["feed_custom"] = plan(f"EXPLAIN EXECUTE feed_q({lit}, 0, 2000)")
        conn.execute(b"SET plan_cache_mode = force_generic_plan")
        out["feed_generic"] = plan(f"EXPLAIN EXECUTE feed_q({lit}, 0, 2000)")
        conn.execute(b"RESET plan_cache_mode")
        out["applied_op"] = plan(
            "EXPLAIN SELECT device_id, seq, result, at FROM applied_ops WHERE op_id='x'")
    return out


def sql_literal(conn: psycopg.Connection[Any], value: str) -> str:
    return pg_sql.Literal(value).as_string(conn)


class Profiler:
    """Optional profiles of the timed parts, written to --profile DIR: cProfile of the
    agent side (NAME.prof) and, with --py-spy BIN, py-spy of the server (NAME.server.txt,
    collapsed stacks)."""

    def __init__(self, out: Path | None, py_spy: str | None) -> None:
        self.out = out
        self.py_spy = py_spy

    def wrap(self, name: str, cmd: list[str]) -> list[str]:
        """`cmd` run under py-spy (NAME.agent.txt) when profiling with --py-spy: the
        agent's side of a whole-process figure (its time and RSS then include py-spy's)."""
        if self.out is None or not self.py_spy:
            return cmd
        self.out.mkdir(parents=True, exist_ok=True)
        return [self.py_spy, "record", "--rate", "250", "--format", "raw", "--output",
                str(self.out / f"{name}.agent.txt"), "--", *cmd]

    @contextmanager
    def __call__(self, name: str, server: ServerProcess | None = None) -> Iterator[None]:
        if self.out is None:
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        spy = None
        if self.py_spy and server is not None and server.proc is not None:
            spy = subprocess.Popen(
                [self.py_spy, "record", "--rate", "250", "--nonblocking", "--gil", "--format", "raw",
                 "--subprocesses", "--output", str(self.out / f"{name}.server.txt"),
                 "--pid", str(server.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # let py-spy attach before the timed part starts
        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            prof.dump_stats(str(self.out / f"{name}.prof"))
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait(timeout=5)
            log(f"profile written to {self.out / name}.*")


# --- the CouchDB-protocol peer, and whole agent processes --------------------------------

# The peer lives next to the repository (`../shared/peer` from its root); --peer or
# FIELDVAULT_PEER point elsewhere.
DEFAULT_PEER = Path(os.environ.get("FIELDVAULT_PEER") or ROOT.parent / "shared" / "peer")
FIELDVAULT = str(Path(sys.executable).parent / "fieldvault")
# Issue 10: first sync >= 10x the peer's pull rate (must: 5x), push >= 5x its push (must: 3x).
PEER_TARGETS = {"pull": (10.0, 5.0), "push": (5.0, 3.0)}
AGENT_RSS_TARGET_MB = 250


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_figure(peer: Path, n: int, common: dict[str, Any]) -> dict[str, Any] | None:
    """`run.sh N` of the CouchDB-protocol peer (PouchDB replicating to and from an
    express-pouchdb server on loopback), in this run: its JSON line, with the best of its
    batch sizes. None (and a note) when it is not there or fails."""
    run_sh = peer / "run.sh"
    if not run_sh.is_file():
        log(f"NOTE: no CouchDB-protocol peer at {peer} (give --peer DIR or set "
            "FIELDVAULT_PEER): the figures below carry no peer ratio")
        emit({"figure": "peer", "missing": str(peer), **common})
        return None
    log(f"peer: bash {run_sh} {n} (PouchDB; npm packages under /tmp)")
    t = time.perf_counter()
    proc = subprocess.run(["bash", str(run_sh), str(n), str(free_port())], capture_output=True,
                          text=True, timeout=700, check=False)
    lines = proc.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1]) if lines else {}
    except ValueError:
        out = {}
    if proc.returncode != 0 or "variants" not in out:
        log(f"NOTE: the peer failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        emit({"figure": "peer", "error": out.get("error") or proc.stderr.strip()[-400:],
              **common})
        return None
    variants = {label: {k: v.get(k) for k in ("batch_size", "pull_docs_per_s",
                                               "push_docs_per_s", "noop_ms")}
                for label, v in out["variants"].items()}
    figure = {
        "figure": "peer", "docs": n, "seconds": round(time.perf_counter() - t, 1),
        "pull_docs_per_s": out["pull_docs_per_s"], "push_docs_per_s": out["push_docs_per_s"],
        "best_pull_docs_per_s": max(v["pull_docs_per_s"] for v in variants.values()),
        "best_push_docs_per_s": max(v["push_docs_per_s"] for v in variants.values()),
        "noop_ms": out.get("noop_ms"), "variants": variants,
        "pouchdb": out.get("pouchdb_version"), "node": out.get("node"),
        "server": out.get("server"), "adapter": out.get("adapter"), **common}
    emit(figure)
    return figure


def vs_peer(rate: float, peer: dict[str, Any] | None, way: str) -> dict[str, Any]:
    """How many times the peer's rate (the best of its batch sizes) `rate` is."""
    if peer is None:
        return {}
    best = peer[f"best_{way}_docs_per_s"]
    target, must = PEER_TARGETS[way]
    return {"peer_docs_per_s": best, "peer_default_docs_per_s": peer[f"{way}_docs_per_s"],
            "x_peer": round(rate / best, 2), "target_x_peer": target, "must_x_peer": must,
            "met_peer": rate / best >= target, "met_peer_must": rate / best >= must}


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of a running process: its peak RSS since its exec. (wait4's ru_maxrss is
    no use here: a forked child starts with this big process's RSS as its maximum.)"""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


# The environment of the timed CLI processes: bytecode cached, as in an installation
# (`pip install` compiles every module it installs). A PYTHONDONTWRITEBYTECODE inherited
# from the shell (this machine's sessions set it) made every run compile the project's
# own modules again, ~55 ms of a no-op sync that no rep's laptop pays. The cache goes to
# the work directory, not into the source tree. Set by main().
CHILD_ENV: dict[str, str] = {}


def child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def server_pgid(server: ServerProcess) -> int:
    assert server.proc is not None, "the server is not running"
    return server.proc.pid  # the leader of its own session and group (tests/harness.py)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process
    group: a server and its workers (ServerProcess starts them in a group of their own)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def run_process(cmd: list[str], timeout: float = 3600,
                cpu: dict[str, float] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB, sampled every 10 ms) and stdout of one run of `cmd`,
    which must succeed. `cpu`, when given, gets the run's CPU seconds under "s"."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=CHILD_ENV or None)
        deadline = time.monotonic() + timeout
        peak_kb = 0
        while True:  # bounded: the deadline below
            peak_kb = max(peak_kb, _peak_rss_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                if cpu is not None:
                    cpu["s"] = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{cmd} took more than {timeout} s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} exited {proc.returncode}: {err.read().decode()[-500:]}")
        return elapsed, peak_kb / 1024, out.read().decode()


def first_sync_process_figure(archives: dict[str, Archive], servers: dict[str, ServerProcess],
                              rep: str, n_cust: int, n_vis: int, work: Path,
                              peer: dict[str, Any] | None,
                              common: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`fieldvault enroll` of a fresh laptop, which ends with its first sync: the whole
    process, timed, with its peak RSS; against the peer's pull in this run."""
    figures = {}
    for backend, server in servers.items():
        # Untimed: an enrollment of a rep with nothing to pull, so the bytecode cache
        # (CHILD_ENV) holds what the command imports, as an installation's does; the
        # timed run was the first CLI process of the bench, and paid for compiling the
        # project, its libraries and the standard library (~0.5-1 s at a load of 2-4).
        spare = archives[backend].add_rep(f"Warm-up Rep {backend}")["id"]
        warm, _ = archives[backend].create_enroll_code(spare, timedelta(hours=1))
        run_process([FIELDVAULT, "enroll", "--server", server.url, "--code", warm,
                     "--home", str(work / f"agent-warm-up-{backend}"), "--json"])
        code, _ = archives[backend].create_enroll_code(rep, timedelta(hours=1))
        home = work / f"agent-process-{backend}"
        log(f"first sync, whole `fieldvault enroll` process ({backend})")
        elapsed, rss, out = run_process([FIELDVAULT, "enroll", "--server", server.url,
                                         "--code", code, "--home", str(home), "--json"])
        # The search index is built by a detached process after the command reports
        # (agent/search_index.py): when it is ready is reported too, not hidden.
        t = time.perf_counter()
        if not search_index.wait_ready(home, 3600):
            raise RuntimeError("the search index builder did not finish within an hour")
        index_ready = elapsed + time.perf_counter() - t
        with closing(Store.open(home)) as store:
            if not store.search_index_ready():
                raise RuntimeError("the detached builder ended without building the index")
        report = json.loads(out)["first_sync"]
        if (report["pulled_customers"], report["pulled_visits"]) != (n_cust, n_vis):
            raise RuntimeError(f"first sync ({backend}) pulled {report}")
        rate = (n_cust + n_vis) / elapsed
        figures[backend] = {
            "figure": "first_sync_process", "records": n_cust + n_vis,
            "seconds": round(elapsed, 3), "records_per_s": round(rate), "pages": report["pages"],
            "index_ready_s": round(index_ready, 3),
            "records_per_s_to_index": round((n_cust + n_vis) / index_ready),
            "peak_rss_mb": round(rss, 1), "target_rss_mb": AGENT_RSS_TARGET_MB,
            "met_rss": rss <= AGENT_RSS_TARGET_MB,
            "what": "whole `fieldvault enroll` process: enrollment, then the first sync to the "
                    "end; index_ready_s: until its detached process has built the search index "
                    "(searches scan exactly until then)",
            **vs_peer(rate, peer, "pull"),
            **pg_extra(backend, rate / figures["sqlite"]["records_per_s"] if figures else 1.0),
            **common}
        emit(figures[backend])
    return figures


NOOP_PROCESS_TARGET_S = 0.3
# Issue 10: the server's answer to a no-op sync <= 5 ms median at a 1M-visit archive, its
# cost independent of the archive's size (<= 1.2 x that at 10k visits). Issue 3 had 8, 1.5.
NOOP_TARGET_MS, NOOP_TARGET_RATIO = 5.0, 1.2


def noop_process_figure(agents: dict[str, Agent], runs: int, common: dict[str, Any]) -> None:
    """`fieldvault sync` with nothing new, the whole process as a rep or a timer runs it
    (start-up, lease check-in, push, pull, the result line), on the device holding the
    full scope; median of `runs`, interleaved with a bare `python -c pass`. The server's
    share: in each round the same device's two requests (the check-in and the pull of
    nothing) are also made from the bench, each timed around its HTTP round trip alone
    (signing and checks excluded): what the server's answers cost the process."""
    cmds = {backend: [FIELDVAULT, "sync", "--home", str(agent.home), "--json"]
            for backend, agent in agents.items()}
    python = [sys.executable, "-c", "pass"]
    for cmd in cmds.values():
        run_process(cmd)  # warm the page cache and the bytecode cache
    wall: dict[str, list[float]] = {name: [] for name in [*cmds, "python"]}
    answers: dict[str, dict[str, list[float]]] = {b: {"lease": [], "pull": []} for b in cmds}
    log(f"no-op sync, whole process: {runs} rounds")
    for _ in range(runs):
        for name, cmd in [*cmds.items(), ("python", python)]:
            elapsed, _, out = run_process(cmd)
            wall[name].append(elapsed)
            if name != "python" and orjson.loads(out)["pulled_visits"]:
                raise RuntimeError("no-op sync pulled something")
        for backend, agent in agents.items():
            _time_noop_requests(agent, answers[backend])
    base = statistics.median(wall["python"])
    for backend in cmds:
        median = statistics.median(wall[backend])
        server_ms = {k: ms(statistics.median(v)) for k, v in answers[backend].items()}
        emit({"figure": "noop_sync_process", "runs": runs, "median_s": round(median, 3),
              "p95_s": round(pct(wall[backend], 95), 3), "target_s": NOOP_PROCESS_TARGET_S,
              "met": median <= NOOP_PROCESS_TARGET_S, "baseline_python_s": round(base, 3),
              "ratio": round(median / base, 2),
              "server_answer_median_ms": server_ms,
              "server_share": round(sum(server_ms.values()) / 1000 / median, 3),
              "bytecode": "cached (as installed)",
              "what": "whole `fieldvault sync --json` process with nothing new (check-in, "
                      "push, pull), on the device holding the full scope; server_answer: "
                      "its two requests' round trips, timed from the agent's side",
              **pg_extra(backend, median / statistics.median(wall["sqlite"])), **common})


def _time_noop_requests(agent: Agent, into: dict[str, list[float]]) -> None:
    """One check-in and one sync with nothing new by the bench's agent of that device
    (as the process makes them), each HTTP round trip timed."""
    client = agent.transport.client
    send = client.send

    def timed(method: str, path_qs: str, body: bytes, headers: dict[str, str]) -> Any:
        t = time.perf_counter()
        try:
            return send(method, path_qs, body, headers)
        finally:
            into["lease" if path_qs.startswith("/v1/lease") else "pull"].append(
                time.perf_counter() - t)

    client.send = timed  # type: ignore[method-assign]
    try:
        sync_mod.check_in(agent.home, agent.config, agent.transport, backlog=(0, None))
        if agent.sync().moved():
            raise RuntimeError("no-op sync moved something")
    finally:
        client.send = send  # type: ignore[method-assign]


# --- baseline ------------------------------------------------------------------------


RAW_KEY = secrets.token_hex(32)


def raw_vault(path: Path) -> sqlcipher3.Connection:
    """A SQLCipher file opened with a raw key by the agent's own `open_vault` (so with the
    agent's pragmas: WAL, synchronous=FULL, temp_store=MEMORY, its cache size) and the
    agent's schema applied by its own migrations (tables, indexes, trigram FTS triggers)."""
    conn = open_vault(path, bytes.fromhex(RAW_KEY))
    conn.isolation_level = None
    agent_migrations.apply(Database(conn))
    return conn


def agent_row(r: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(r.get(k) for k in columns)


def baseline_bulk(path: Path, customers: list[dict[str, Any]], visits: list[dict[str, Any]]
                  ) -> float:
    """Rows/s of a raw executemany of the same rows in one transaction."""
    conn = raw_vault(path)
    crow = [agent_row(r, CUSTOMER_COLUMNS) for r in customers]
    vrow = [agent_row(r, VISIT_COLUMNS) for r in visits]
    t = time.perf_counter()
    conn.execute("BEGIN")
    if crow:
        conn.executemany(f"INSERT INTO customers ({', '.join(CUSTOMER_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(CUSTOMER_COLUMNS))})", crow)
    conn.executemany(f"INSERT INTO visits ({', '.join(VISIT_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(VISIT_COLUMNS))})", vrow)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return (len(crow) + len(vrow)) / elapsed


def baseline_single(filled: Path, path: Path, visits: list[dict[str, Any]]) -> list[float]:
    """Seconds per raw single-row INSERT + COMMIT (synchronous=FULL) of each visit, into a
    copy of the baseline vault that already holds the scope (as the device does)."""
    shutil.copyfile(filled, path)
    conn = raw_vault(path)
    sql = (f"INSERT INTO visits ({', '.join(VISIT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(VISIT_COLUMNS))})")
    out = []
    for r in visits:
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, agent_row(r, VISIT_COLUMNS))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - t)
    conn.close()
    return out


# --- figures ------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms(x: float) -> float:
    return round(x * 1000, 3)


def build_company(work: Path, gen: Gen, total_visits: int, scope_customers: int,
                  scope_visits: int, visits_per_customer: int = 5) -> tuple[Path, str]:
    """An archive of `total_visits` over reps of 10k visits each, plus one rep (returned)
    with a fixed scope whose feed rows sit in the middle of the feed."""
    data = work / f"company-{total_visits}"
    b = ArchiveBuilder(data)
    other_visits = total_visits - scope_visits
    per_rep = 10_000
    n_other = max(1, -(-other_visits // per_rep))
    bench_rep = ""
    customers: list[dict[str, Any]] = []
    visits: list[dict[str, Any]] = []
    for i in range(n_other + 1):
        if i == n_other // 2:
            bench_rep = b.add_rep(f"Bench Rep {total_visits}")
            cs, vs = scope(gen, bench_rep, scope_customers, scope_visits)
            customers += cs
            visits += vs
        nv = min(per_rep, other_visits - i * per_rep)
        if i == n_other or nv <= 0:
            continue
        cs, vs = scope(gen, b.add_rep(f"Rep {i:03d}"), max(1, nv // visits_per_customer), nv)
        customers += cs
        visits += vs
    b.load(customers, visits)
    b.close()
    return data, bench_rep


QUICK = {"scale": 0.1, "syncs": 100, "log_calls": 500, "starts": 7, "page_rounds": 5}
FULL = {"scale": 1.0, "syncs": 200, "log_calls": 2000, "starts": 21, "page_rounds": 20}
BACKENDS = ("sqlite", "postgresql")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a run of a few minutes: --scale 0.1 --syncs 100 --log-calls 500 "
                         "--starts 7 (each can still be given)")
    ap.add_argument("--scale", type=float, default=None,
                    help="multiply record counts (1.0 = the issue's figures; 0.1 = quick run)")
    ap.add_argument("--only", default="all",
                    help="comma list of figures: initial_sync,first_sync_process,noop_sync_process,"
                         "push,noop_sync,log_visit,startup, and the page sections console,ui "
                         "(scripts/bench_pages.py)")
    ap.add_argument("--skip-pages", action="store_true",
                    help="leave out the console and ui page sections")
    ap.add_argument("--page-rounds", type=int, default=None,
                    help="requests per page in the console and ui sections (20)")
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="comma list of archives to measure initial_sync, push and noop_sync "
                         "on: sqlite,postgresql (PostgreSQL: a throwaway cluster, fsync on)")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write cProfile stats of each timed part (agent side) to this dir")
    ap.add_argument("--py-spy", default=None, metavar="BIN",
                    help="with --profile: also record the server with this py-spy binary")
    ap.add_argument("--litestream", action="store_true",
                    help="serve with the default Litestream file replica (default: --replica none)")
    ap.add_argument("--peer", type=Path, default=DEFAULT_PEER,
                    help="the CouchDB-protocol peer's folder, run in the same run "
                         f"(default {DEFAULT_PEER}, or FIELDVAULT_PEER)")
    ap.add_argument("--syncs", type=int, default=None, help="no-op syncs per archive (200)")
    ap.add_argument("--log-calls", type=int, default=None,
                    help="timed Store.log_visit calls (2000)")
    ap.add_argument("--starts", type=int, default=None,
                    help="timed runs of each command in the startup figures (21)")
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not 0 < args.scale <= 10:
        ap.error("--scale must be in (0, 10]")
    if not (1 <= args.syncs <= 100_000 and 1 <= args.log_calls <= 100_000
            and 1 <= args.starts <= 1000 and 1 <= args.page_rounds <= 1000):
        ap.error("--syncs and --log-calls must be between 1 and 100000, --starts and "
                 "--page-rounds up to 1000")
    figures = {"initial_sync", "first_sync_process", "noop_sync_process", "push", "noop_sync",
               "log_visit", "startup", *bench_pages.SECTIONS}
    only = set(args.only.split(",")) if args.only != "all" else figures
    if only - figures:
        ap.error(f"unknown figures {sorted(only - figures)}; choose from {sorted(figures)}")
    if args.skip_pages:
        only -= set(bench_pages.SECTIONS)
    backends = set(args.backends.split(","))
    if backends - set(BACKENDS) or "sqlite" not in backends:
        ap.error(f"--backends: sqlite, optionally with postgresql (got {args.backends})")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        ap.error(f"--work {args.work} is not empty")
    pg: Postgres | None = None
    if "postgresql" in backends and only & {"initial_sync", "first_sync_process",
                                            "noop_sync_process", "push", "noop_sync"}:
        try:
            pg = Postgres()
        except pgcluster.PostgresMissing as exc:
            ap.error(f"{exc}; or measure SQLite alone with --backends sqlite")
    work = args.work or Path(tempfile.mkdtemp(prefix="fieldvault-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    CHILD_ENV.update(child_env(work))
    prof = Profiler(args.profile, args.py_spy)
    if args.litestream:
        REPLICA[0] = None
    s = args.scale
    n_cust, n_vis, n_push = int(20_000 * s), int(80_000 * s), int(100_000 * s)
    gen = Gen(seed=20260101)
    common: dict[str, Any] = {"scale": s, "python": platform.python_version(),
                              "cpus": os.cpu_count()}
    if pg is not None:
        common["postgresql"] = pg.version
    t_start = time.perf_counter()
    try:
        run_figures(args, only, work, prof, gen, common, n_cust, n_vis, n_push, pg)
        for name, section in bench_pages.SECTIONS.items():
            if name in only:
                log(f"section {name} (scale {s}, {args.page_rounds} requests per page)")
                section(work / f"pages-{name}", s, args.page_rounds,
                        lambda f: emit({**f, **common}))
    finally:
        if pg is not None:
            pg.stop()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    log(f"done in {time.perf_counter() - t_start:.0f}s")
    return 0


BASELINE = ("raw SQLCipher executemany of the same rows in one transaction; agent schema "
            "incl. trigram FTS triggers, agent pragmas (WAL, synchronous=FULL, cache); mean of "
            "a run just before and one just after the timed part")


def baseline_around(path: Path, customers: list[dict[str, Any]], visits: list[dict[str, Any]],
                    timed: Any) -> tuple[float, list[float], Any]:
    """Run `timed()` between two baseline measurements, so both see the same machine."""
    before = baseline_bulk(path.with_suffix(".1.db"), customers, visits)
    out = timed()
    after = baseline_bulk(path.with_suffix(".2.db"), customers, visits)
    return (before + after) / 2, [round(before), round(after)], out


Results = dict[str, dict[str, dict[str, Any]]]  # figure -> backend -> its JSON line


def run_figures(args: argparse.Namespace, only: set[str], work: Path, prof: Profiler,
                gen: Gen, common: dict[str, Any], n_cust: int, n_vis: int, n_push: int,
                pg: Postgres | None) -> None:
    results: Results = {}
    peer = None
    if only & {"initial_sync", "first_sync_process", "push"}:
        peer = peer_figure(args.peer, n_push, common)
    if only & {"initial_sync", "first_sync_process", "noop_sync_process", "push", "log_visit",
               "startup"}:
        # The scope these figures use: one rep, 20k customers + 80k visits.
        data = work / "scope"
        b = ArchiveBuilder(data)
        rep = b.add_rep("Bench Rep")
        customers, visits = scope(gen, rep, n_cust, n_vis)
        log(f"building archive: {n_cust} customers + {n_vis} visits")
        b.load(customers, visits)
        b.close()
        with ExitStack() as stack:
            servers = {"sqlite": stack.enter_context(serving(data))}
            archives = {"sqlite": b.archive}
            agents = {"sqlite": stack.enter_context(closing(
                Agent(work / "agent", servers["sqlite"], b.archive, rep)))}
            if pg is not None and only & {"initial_sync", "first_sync_process",
                                          "noop_sync_process", "push"}:
                log("PostgreSQL: copying the scope archive")
                pg_data, url = pg.copy_of(data)
                servers["postgresql"] = stack.enter_context(serving(pg_data, url))
                archive = stack.enter_context(closing(open_archive(pg_data, url=url)))
                archives["postgresql"] = archive
                agents["postgresql"] = stack.enter_context(closing(
                    Agent(work / "agent-pg", servers["postgresql"], archive, rep)))
            if "first_sync_process" in only:
                results["first_sync_process"] = first_sync_process_figure(
                    archives, servers, rep, n_cust, n_vis, work, peer, common)
            results["initial_sync"] = initial_sync_figure(
                agents, servers, customers, visits, work, prof, common,
                emit_it="initial_sync" in only)
            if "noop_sync_process" in only:
                noop_process_figure(agents, args.starts, common)
            if "startup" in only:
                startup_figures(args, work / "agent", common)
            if "log_visit" in only:
                log_visit_figure(args, agents["sqlite"], customers, gen, work, prof, common)
            if "push" in only:
                results["push"] = push_figure(agents, servers, archives, customers, gen, n_push,
                                              work, prof, common, peer)
    if "noop_sync" in only:
        results["noop_sync"] = noop_sync_figure(args, work, gen, prof, common, pg)
    if pg is not None:
        compare(results, common)


def profile_name(figure: str, backend: str) -> str:
    return figure if backend == "sqlite" else f"{figure}.{backend}"


def pg_extra(backend: str, ratio: float) -> dict[str, Any]:
    """What a PostgreSQL line adds: its server and the ratio to SQLite's figure."""
    if backend == "sqlite":
        return {"backend": "sqlite", "server_workers": 1}
    return {"backend": backend, "server_workers": PG_WORKERS,
            "ratio_to_sqlite": round(ratio, 3)}


def initial_sync_figure(agents: dict[str, Agent], servers: dict[str, ServerProcess],
                        customers: list[dict[str, Any]], visits: list[dict[str, Any]],
                        work: Path, prof: Profiler, common: dict[str, Any],
                        emit_it: bool) -> dict[str, dict[str, Any]]:
    """Each backend's agent pulls the whole scope in turn, between the two baselines."""
    n_cust, n_vis = len(customers), len(visits)

    def timed() -> dict[str, tuple[float, sync_mod.SyncReport]]:
        out = {}
        for backend, agent in agents.items():
            log(f"initial sync ({backend})")
            t = time.perf_counter()
            with prof(profile_name("initial_sync", backend), servers[backend]):
                report = agent.sync()
            out[backend] = (time.perf_counter() - t, report)
        return out

    log("baseline: raw SQLCipher bulk insert of the same rows, before and after")
    base, runs, timings = baseline_around(work / "baseline-scope", customers, visits, timed)
    figures: dict[str, dict[str, Any]] = {}
    for backend, (elapsed, report) in timings.items():
        got = agents[backend].store.counts()
        if got != {"customers": n_cust, "visits": n_vis}:
            raise RuntimeError(f"initial sync ({backend}) pulled {got}, expected "
                               f"{n_cust}/{n_vis}")
        rate = (n_cust + n_vis) / elapsed
        figures[backend] = {
            "figure": "initial_sync", "records": n_cust + n_vis, "customers": n_cust,
            "visits": n_vis, "pages": report.pages, "seconds": round(elapsed, 3),
            "records_per_s": round(rate), "baseline_rows_per_s": round(base),
            "baseline_runs": runs, "ratio": round(rate / base, 3), "target_ratio": 0.5,
            "met": rate / base >= 0.5, "baseline": BASELINE,
            **pg_extra(backend, timings["sqlite"][0] / elapsed), **common}
        if emit_it:
            emit(figures[backend])
    return figures


# `fieldvault status` (issue 8, finding 16): 0.3 s where a bare `python -c pass` takes
# 0.05 s, i.e. 6x the bare interpreter; the ratio holds on a busy machine, seconds do not.
STARTUP_TARGET_S = 0.3
STARTUP_TARGET_RATIO = 6.0


def _run_timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one run of `cmd`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False,
                          env=CHILD_ENV or None)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def startup_figures(args: argparse.Namespace, home: Path, common: dict[str, Any]) -> None:
    """Start-up of the CLIs against a bare interpreter, in interleaved rounds so that
    machine noise weighs on every series alike. `status` runs on the enrolled device
    holding the full scope (it opens the vault and counts what it holds)."""
    bin_dir = Path(sys.executable).parent
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "status": [str(bin_dir / "fieldvault"), "status", "--home", str(home)],
        "agent_help": [str(bin_dir / "fieldvault"), "--help"],
        "server_help": [str(bin_dir / "fieldvault-server"), "--help"],
    }
    log(f"startup: {args.starts} rounds of {', '.join(commands)}")
    for cmd in commands.values():
        _run_timed(cmd)  # warm the page cache and the .pyc files
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.starts):
        for name, cmd in commands.items():
            w, c = _run_timed(cmd)
            wall[name].append(w)
            cpu[name].append(c)
    base_wall, base_cpu = statistics.median(wall["python"]), statistics.median(cpu["python"])
    for name, what in (("status", "fieldvault status (enrolled device, full scope)"),
                       ("agent_help", "fieldvault --help"),
                       ("server_help", "fieldvault-server --help")):
        median = statistics.median(wall[name])
        figure: dict[str, Any] = {
            "figure": f"startup_{name}", "command": what, "runs": args.starts,
            "median_s": round(median, 3), "p95_s": round(pct(wall[name], 95), 3),
            "cpu_median_s": round(statistics.median(cpu[name]), 3),
            "baseline_python_s": round(base_wall, 3), "baseline_python_cpu_s": round(base_cpu, 3),
            "ratio": round(median / base_wall, 2),
            "cpu_ratio": round(statistics.median(cpu[name]) / base_cpu, 2),
            "baseline": "bare `python -c pass` of the same venv, same rounds"}
        if name == "status":
            figure.update(target_s=STARTUP_TARGET_S, met=median <= STARTUP_TARGET_S,
                          target_ratio=STARTUP_TARGET_RATIO,
                          met_ratio=median / base_wall <= STARTUP_TARGET_RATIO)
        emit({**figure, **common})


def visit_model(gen: Gen, customer_id: str) -> VisitCreate:
    """A visit to push: made in the last hours, so after its card existed and inside the
    rep's ownership (the server holds other start times for review)."""
    f = gen.visit_fields()
    shift = datetime.now(UTC) - timedelta(minutes=gen.rnd.randint(1, 600)) - f["started_at"]
    for key in ("started_at", "ended_at", "next_at"):
        f[key] += shift
    return VisitCreate(customer_id=customer_id, **f)


def log_visit_figure(args: argparse.Namespace, agent: Agent, customers: list[dict[str, Any]],
                     gen: Gen, work: Path, prof: Profiler, common: dict[str, Any]) -> None:
    n = args.log_calls
    log(f"log_visit: {n} calls on a device holding the full scope")
    models = [visit_model(gen, gen.rnd.choice(customers)["id"]) for _ in range(n)]
    before = agent.store.outbox_counts()["pending"]
    times = []
    with prof("log_visit"):
        for m in models:
            t = time.perf_counter()
            agent.store.log_visit(m)
            times.append(time.perf_counter() - t)
    if agent.store.outbox_counts()["pending"] != before + n:
        raise RuntimeError("log_visit did not queue every visit")
    rows = list(agent.store.db.query("SELECT * FROM visits WHERE rev = 0"))
    raw = baseline_single(work / "baseline-scope.2.db", work / "baseline-single.db", rows)
    p50, p95, raw50 = pct(times, 50), pct(times, 95), pct(raw, 50)
    emit({"figure": "log_visit", "calls": n, "p50_ms": ms(p50), "p95_ms": ms(p95),
          "max_ms": ms(max(times)), "target_p95_ms": 5.0, "met": p95 * 1000 <= 5.0,
          "baseline_single_insert_p50_ms": ms(raw50),
          "baseline_single_insert_p95_ms": ms(pct(raw, 95)),
          "ratio": round(p50 / raw50, 3),
          "ratio_note": "p50 log_visit / p50 raw single-row INSERT+COMMIT of the same visit "
                        "(agent schema, synchronous=FULL)",
          "device_records": sum(agent.store.counts().values()), **common})
    # Push them now so the push figure starts from an empty outbox.
    agent.sync()


def wait_applied(archive: Archive, n_push: int, timeout_s: float = 1800) -> None:
    """Until the archive has applied every stored push batch (rules/received.py)."""
    deadline = time.monotonic() + timeout_s
    while archive.received_backlog()["ops"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {n_push} pushed visits were not applied in {timeout_s} s")
        time.sleep(0.05)


def push_figure(agents: dict[str, Agent], servers: dict[str, ServerProcess],
                archives: dict[str, Archive], customers: list[dict[str, Any]], gen: Gen,
                n_push: int, work: Path, prof: Profiler, common: dict[str, Any],
                peer: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The same visits logged offline on each backend's agent, then pushed in turn,
    between the two baselines. A backlog this long is stored by the archive and
    answered at once, its rules applied after (agent/sync.DEFER_FROM): the figure is the
    `fieldvault sync` process, as the rep waits for it; `applied_s` is when the archive
    had applied the last of them (the time a manager could see them all)."""
    models = [visit_model(gen, customers[i % len(customers)]["id"]) for i in range(n_push)]
    for backend, agent in agents.items():
        store = agent.store
        log(f"push: logging {n_push} visits offline with Store.log_visit ({backend})")
        # Setup only: the offline logging is not what this figure times, so its
        # per-visit fsync is skipped; the timed push below runs with FULL again.
        store.conn.execute("PRAGMA synchronous = OFF")
        t = time.perf_counter()
        for m in models:
            store.log_visit(m)
        log(f"  logged in {time.perf_counter() - t:.1f}s")
        store.conn.execute("PRAGMA synchronous = FULL")
        if store.outbox_counts()["pending"] != n_push:
            raise RuntimeError("outbox does not hold the logged visits")
    rows = list(agents["sqlite"].store.db.query("SELECT * FROM visits WHERE rev = 0"))

    def timed() -> dict[str, tuple[float, float, dict[str, Any]]]:
        out = {}
        for backend, agent in agents.items():
            log(f"push: timing a whole `fieldvault sync` process ({backend})")
            cpu: dict[str, float] = {}
            pgid = server_pgid(servers[backend])
            server_cpu = group_cpu_s(pgid)
            started = time.perf_counter()
            with prof(profile_name("push", backend), servers[backend]):
                elapsed, rss, text = run_process(prof.wrap(
                    profile_name("push", backend),
                    [FIELDVAULT, "sync", "--home", str(agent.home), "--json"]), cpu=cpu)
            cpu["server"] = group_cpu_s(pgid) - server_cpu
            wait_applied(archives[backend], n_push)
            applied_s = time.perf_counter() - started
            cpu["server_applied"] = group_cpu_s(pgid) - server_cpu
            # py-spy (--py-spy) writes its own lines around the report.
            report = json.loads("\n".join(line for line in text.splitlines()
                                           if not line.startswith("py-spy> ")))
            taken = report["results"].get("accepted", 0) + report["results"].get("received", 0)
            if taken != n_push or agent.store.outbox_counts()["pending"]:
                raise RuntimeError(f"push ({backend}) did not send everything: "
                                   f"{report['results']}")
            # Every op accepted: in the push's answers, among the verdicts the timed sync
            # had by its end (the applier goes on once the oldest batch has waited 60 s,
            # so on a loaded machine it may have had many), or in a later sync's (not
            # timed).
            accepted = (report["results"].get("accepted", 0)
                        + report["verdicts"].get("accepted", 0))
            for _ in range(10):
                later = agent.sync()
                accepted += later.verdicts.get("accepted", 0)
                if not later.awaiting_verdict:
                    break
            if accepted != n_push:
                raise RuntimeError(f"push ({backend}): {accepted} of {n_push} accepted "
                                   f"({report['results']}, {report['verdicts']})")
            out[backend] = (elapsed, rss, {**report, "cpu": cpu, "applied_s": applied_s})
        return out

    log("baseline: raw SQLCipher bulk insert of the same visits, before and after")
    base, runs, timings = baseline_around(work / "baseline-push", [], rows, timed)
    figures: dict[str, dict[str, Any]] = {}
    for backend, (elapsed, rss, report) in timings.items():
        rate = n_push / elapsed
        figures[backend] = {
            "figure": "push", "ops": n_push, "seconds": round(elapsed, 3),
            "ops_per_s": round(rate), "peak_rss_mb": round(rss, 1),
            "pulled_back": report["pulled_visits"],
            # CPU per op on each side: what the machine's other load does not change.
            "agent_cpu_us_per_op": round(report["cpu"]["s"] * 1e6 / n_push, 1),
            "server_cpu_us_per_op": round(report["cpu"]["server"] * 1e6 / n_push, 1),
            "received": report["results"].get("received", 0),
            "applied_s": round(report["applied_s"], 3),
            "applied_ops_per_s": round(n_push / report["applied_s"]),
            "server_cpu_us_per_op_applied": round(
                report["cpu"]["server_applied"] * 1e6 / n_push, 1),
            "applied_x_peer": round(n_push / report["applied_s"] / peer["best_push_docs_per_s"], 2)
            if peer else None,
            "what": "whole `fieldvault sync` process: check-in, push of the outbox (stored by "
                    "the archive, answered `received`, rules applied after), the pull and the "
                    "verdicts ready by then; applied_s: from its start until the archive had "
                    "applied the last visit",
            "baseline_rows_per_s": round(base),
            "baseline_runs": runs, "ratio": round(rate / base, 3), "target_ratio": 0.3,
            "met": rate / base >= 0.3, "baseline": BASELINE, **vs_peer(rate, peer, "push"),
            **pg_extra(backend, timings["sqlite"][0] / elapsed), **common}
        emit(figures[backend])
    return figures


def noop_sync_figure(args: argparse.Namespace, work: Path, gen: Gen, prof: Profiler,
                     common: dict[str, Any], pg: Postgres | None) -> dict[str, dict[str, Any]]:
    """Every archive (small and large, on each backend) served at once and synced in
    rotating order, so that whatever else the machine does at the time weighs on every
    series alike."""
    s = args.scale
    sizes = {"small": max(1_000, int(10_000 * s)), "large": int(1_000_000 * s)}
    scope_c, scope_v = max(20, int(200 * min(s, 1))), max(100, int(1000 * min(s, 1)))
    builds: dict[tuple[str, str], tuple[Path, str | None, str]] = {}
    for label, total in sizes.items():
        log(f"noop_sync: building an archive of {total} visits")
        t = time.perf_counter()
        data, rep = build_company(work, gen, total, scope_c, scope_v)
        builds[("sqlite", label)] = (data, None, rep)
        log(f"  built in {time.perf_counter() - t:.1f}s")
        if pg is not None:
            log("  copying it to PostgreSQL")
            pg_data, pg_url = pg.copy_of(data)
            builds[("postgresql", label)] = (pg_data, pg_url, rep)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in builds}
    with ExitStack() as stack:
        servers, agents = {}, {}
        for key, (data, url, rep) in builds.items():
            servers[key] = stack.enter_context(serving(data, url))
            archive = stack.enter_context(closing(open_archive(data, url=url)))
            home = work / ("agent-" + "-".join(key))
            agent = stack.enter_context(closing(Agent(home, servers[key], archive, rep)))
            agent.sync()
            if agent.store.counts() != {"customers": scope_c, "visits": scope_v}:
                raise RuntimeError(f"noop_sync agent ({key}) did not pull its scope")
            agents[key] = agent
        keys = list(agents)
        log(f"noop_sync: {args.syncs} syncs against each of {len(keys)} archives, rotating")
        with prof("noop_sync", servers[("sqlite", "large")]):
            for i in range(args.syncs + 20):
                k = i % len(keys)
                for key in keys[k:] + keys[:k]:
                    t = time.perf_counter()
                    report = agents[key].sync()
                    if i >= 20:  # the first 20 rounds warm up
                        times[key].append(time.perf_counter() - t)
                    if report.pushed or report.pulled_visits or report.pulled_customers:
                        raise RuntimeError(f"no-op sync ({key}) moved data: {report}")
    med = {key: statistics.median(v) for key, v in times.items()}
    figures: dict[str, dict[str, Any]] = {}
    for backend in dict.fromkeys(b for b, _ in builds):
        ratio = med[(backend, "large")] / med[(backend, "small")]
        result: dict[str, Any] = {"figure": "noop_sync"}
        for label in ("large", "small"):
            result.update({f"archive_visits_{label}": sizes[label],
                           f"median_ms_{label}": ms(med[(backend, label)]),
                           f"p95_ms_{label}": ms(pct(times[(backend, label)], 95))})
        result.update({
            "syncs": args.syncs, "scope_records": scope_c + scope_v, "ratio": round(ratio, 3),
            "ratio_note": "median large / median small",
            "target_median_ms": NOOP_TARGET_MS, "target_ratio": NOOP_TARGET_RATIO,
            "met": med[(backend, "large")] * 1000 <= NOOP_TARGET_MS and ratio <= NOOP_TARGET_RATIO,
            **pg_extra(backend, med[(backend, "large")] / med[("sqlite", "large")])})
        if backend != "sqlite":
            result["ratio_to_sqlite_small"] = round(
                med[(backend, "small")] / med[("sqlite", "small")], 3)
            _, large_url, large_rep = builds[(backend, "large")]
            assert large_url is not None
            result["plans_large"] = pg_plans(large_url, large_rep)
        figures[backend] = {**result, **common}
        emit(figures[backend])
    return figures


def compare(results: Results, common: dict[str, Any]) -> None:
    """PostgreSQL next to SQLite, from this run: one JSON line, and a table on stderr."""
    rows: list[tuple[str, str, Any, Any, Any]] = []

    def row(name: str, unit: str, figure: str, key: str) -> None:
        got = results.get(figure, {})
        if "sqlite" in got and "postgresql" in got:
            a, b = got["sqlite"][key], got["postgresql"][key]
            rows.append((name, unit, a, b, round(b / a, 2) if a else None))

    row("initial sync (pull)", "records/s", "initial_sync", "records_per_s")
    row("initial sync (pull)", "s", "initial_sync", "seconds")
    row("first sync, whole enroll process", "records/s", "first_sync_process", "records_per_s")
    row("first sync, whole enroll process", "peak RSS MB", "first_sync_process", "peak_rss_mb")
    row("push, whole sync process", "ops/s", "push", "ops_per_s")
    row("push", "s", "push", "seconds")
    noop = results.get("noop_sync", {}).get("sqlite", {})
    for label in ("large", "small"):
        visits = noop.get(f"archive_visits_{label}", label)
        row(f"no-op sync, {visits}-visit archive", "median ms", "noop_sync",
            f"median_ms_{label}")
        row(f"no-op sync, {visits}-visit archive", "p95 ms", "noop_sync",
            f"p95_ms_{label}")
    row("no-op sync", "ratio large/small", "noop_sync", "ratio")
    emit({"figure": "postgresql_vs_sqlite",
          "rows": [{"figure": n, "unit": u, "sqlite": a, "postgresql": b,
                    "postgresql_over_sqlite": r} for n, u, a, b, r in rows],
          "note": "ratio = PostgreSQL / SQLite: above 1 is PostgreSQL higher (for a rate, "
                  "faster; for seconds or ms, slower)",
          "sqlite_server": "1 worker, WAL, synchronous=NORMAL",
          "postgresql_server": f"{PG_WORKERS} workers, fsync on, synchronous_commit on "
                               "(the server turns it off for nonce writes only)",
          **common})
    lines = ["| figure | unit | SQLite | PostgreSQL | PostgreSQL / SQLite |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {u} | {a:,} | {b:,} | {r} |" for n, u, a, b, r in rows]
    log("PostgreSQL next to SQLite (same run):\n" + "\n".join(lines))



if __name__ == "__main__":
    sys.exit(main())
