"""Fleet simulator: N simulated reps syncing against a real `fieldvault-server serve`.

`scripts/fleet --agents N --minutes M` (issue 9, "Fleet simulator"). Each simulated
rep is an asyncio task speaking the agent's wire protocol byte for byte (FV2-REQ
Ed25519 request signatures, the pinned server key checked on every answer, the
lease sealed to its X25519 key opened for its epoch), but keeps its state in memory
instead of a SQLCipher vault, so a thousand of them fit in one process.

A rep's day, compressed: it logs visits offline in bursts (1-10 between syncs, to
customers it owns, dated inside its ownership), now and then edits a card
(customer.update on the rev it last saw), and syncs on a jittered timer the way
`fieldvault sync` does: lease check-in, push the outbox, pull to the end of the feed.
One "sync" (the latency figure) is that whole round trip. Meanwhile the office
reassigns a few customers (`fieldvault-server customer assign`) and HR revokes one
rep (`fieldvault-server revoke --reassign-to pool`): that rep's agent sees the
revocation, hands over its outbox (final flush), obeys the wipe order, sends its
receipt and stops. That is counted apart, never as an error.

Set-up: reps and enrollment codes go through the archive library in this process
(two CLI starts per rep would cost ~17 minutes for a fleet of 1,000), customers
through `customer import` of a generated CSV, devices enroll over HTTP with fresh keys.
The server's CPU and RSS are sampled every second from /proc, summed over the server
process and all its children (Litestream, workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schema import sealing, signing  # noqa: E402
from schema.clock import iso, parse_iso  # noqa: E402

SERVER_BIN = str(Path(sys.executable).parent / "fieldvault-server")
REVOKED_CODES = ("device_revoked", "device_wiped")
PULL_PAGE = 2000
MAX_PULL_PAGES = 10_000  # bounds the pull loop; a rep's scope is far smaller
STOP_GRACE_S = 60.0  # how long syncs in flight at the deadline may take to finish

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "强", "丽", "涛", "明", "超")
COMPANY_HEADS = ("华联", "恒通", "金桥", "宏达", "新源", "盛世", "永泰", "鑫隆", "瑞丰", "天成")
COMPANY_HEADS_EN = ("Pacific", "Golden Bridge", "Evergreen", "Sunrise", "Harbor", "Summit")
COMPANY_TAILS = ("贸易有限公司", "机械厂", "食品有限公司", "物流公司", "建材商行", "医疗器械公司")
CITIES = ("上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "天津")
INDUSTRIES = ("retail", "manufacturing", "logistics", "food", "medical", "construction")
PURPOSES = ("new_development", "market_research", "collection", "service", "complaint",
            "order", "other")
SUMMARIES = (
    "拜访{who}，介绍了新款产品，对方对价格比较敏感。",
    "与{who}沟通上季度回款，承诺月底前付清。",
    "{who}反映上次交货延迟，已记录并协调仓库。",
    "Met {who} to review the quarterly order; they want volume pricing.",
    "现场演示设备，{who}表示需要和采购部门商量。",
    "Follow-up call with {who} about the service contract renewal.",
    "{who}提出新需求：希望提供上门安装服务。",
    "Delivered samples to {who}; feedback expected next week.",
)
OUTCOMES = ("达成初步意向", "需要再次跟进", "已下单", "Agreed to a trial order",
            "Waiting for the budget decision", "客户暂无需求", "")
COMPETITORS = ("", "", "某竞品报价低10%", "Competitor X offered free shipping", "竞争对手在接触")
CARD_EDITS: tuple[Callable[[random.Random], dict[str, str]], ...] = (
    lambda r: {"needs": r.choice(("需要更大批量的折扣", "Looking for faster delivery",
                                  "关注售后服务响应时间", "希望账期延长到60天"))},
    lambda r: {"notes": f"{r.choice(CITIES)}展会上见过面 / met at the trade fair"},
    lambda r: {"grade": r.choice("ABC")},
    lambda r: {"phone": f"+86 1{r.randint(30, 89)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}"},
    lambda r: {"purchasing_status": r.choice(("采购计划已批准", "Budget frozen until Q3",
                                              "正在比价"))},
)


def person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.5 else "")


def company(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"{rng.choice(COMPANY_HEADS_EN)} {rng.choice(('Trading', 'Foods', 'Logistics'))} Co."
    return rng.choice(CITIES) + rng.choice(COMPANY_HEADS) + rng.choice(COMPANY_TAILS)


# --- configuration and figures ------------------------------------------------------


@dataclass
class FleetConfig:
    agents: int = 10
    minutes: float = 1.0
    sync_every: float = 60.0  # mean seconds between one agent's syncs (jitter 0.5x-1.5x)
    customers_per_rep: int = 20
    visits_per_sync: tuple[int, int] = (1, 10)
    edit_chance: float = 0.3  # chance that a burst also edits a card
    reassignments: int = 3
    departure: bool = True
    archive: str | None = None  # passed through as --archive
    workers: int | None = None  # passed through to serve as --workers
    replica: str | None = None  # passed through to serve as --replica
    data: Path | None = None  # default: a fresh temporary folder, removed afterwards
    seed: int | None = None
    request_timeout: float = 60.0  # as the agent's Transport
    enroll_concurrency: int = 16
    progress: bool = True
    server_bin: str = SERVER_BIN


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 1)) - 1))
    return sorted_values[k]


def latency_ms(values: list[float]) -> dict[str, float | int]:
    s = sorted(values)
    return {"n": len(s), "p50": round(percentile(s, 0.50) * 1000, 1),
            "p95": round(percentile(s, 0.95) * 1000, 1), "p99": round(percentile(s, 0.99) * 1000, 1),
            "max": round((s[-1] if s else 0.0) * 1000, 1)}


@dataclass
class Stats:
    syncs: int = 0
    sync_latency: list[float] = field(default_factory=list)
    request_latency: dict[str, list[float]] = field(default_factory=dict)
    ops: Counter[str] = field(default_factory=Counter)  # "kind:status" of acknowledged ops
    pulled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    revoked_agents: int = 0
    final_flush_ops: int = 0
    wipe_receipts: int = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {detail[:300]}")

    def ops_pushed(self) -> int:
        return sum(self.ops.values())


# --- the server process and its CLI -------------------------------------------------


class ProcTree:
    """CPU seconds and RSS of a process and all its descendants, from /proc."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks: dict[tuple[int, str], int] = {}  # (pid, start time) -> utime+stime
        self.rss_peak = 0
        self.rss_last = 0
        self.processes = 0

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = self._stat(int(entry.name))
                if fields is not None:
                    children.setdefault(int(fields[1]), []).append(int(entry.name))
        out: list[int] = []
        todo = [self.pid]
        while todo and len(out) < 10_000:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def sample(self) -> None:
        rss = 0
        pids = self._tree()
        for pid in pids:
            fields = self._stat(pid)
            if fields is None:
                continue
            self.ticks[(pid, fields[19])] = int(fields[11]) + int(fields[12])
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
        self.rss_last = rss
        self.rss_peak = max(self.rss_peak, rss)
        self.processes = len(pids)

    def cpu_seconds(self) -> float:
        return sum(self.ticks.values()) / self.TICK


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine: how loaded it was besides us."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`fieldvault-server serve` on a loopback port, and its admin commands."""

    def __init__(self, config: FleetConfig, data: Path) -> None:
        self.config = config
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{data.name}-serve.log"

    def cli_args(self, *args: str) -> list[str]:
        cmd = [self.config.server_bin, *args, "--data", str(self.data), "--json"]
        if self.config.archive:
            cmd += ["--archive", self.config.archive]
        return cmd

    def cli(self, *args: str, timeout: float = 600) -> Any:
        proc = subprocess.run(self.cli_args(*args), capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "NO_COLOR": "1"})
        if proc.returncode != 0:
            raise RuntimeError(f"fieldvault-server {' '.join(args[:2])}: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        return json.loads(proc.stdout)

    async def acli(self, *args: str, timeout: float = 120) -> Any:
        """An admin command run while the fleet is syncing, without blocking the loop."""
        proc = await asyncio.create_subprocess_exec(
            *self.cli_args(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"})
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"fieldvault-server {args[0]} took over {timeout}s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"fieldvault-server {' '.join(args[:2])}: {err.decode().strip()[-500:]}")
        return json.loads(out)

    def start(self, timeout: float = 60) -> None:
        cmd = [self.config.server_bin, "serve", "--data", str(self.data), "--port", str(self.port)]
        if self.config.archive:
            cmd += ["--archive", self.config.archive]
        if self.config.workers:
            cmd += ["--workers", str(self.config.workers)]
        if self.config.replica:
            cmd += ["--replica", self.config.replica]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not come up in {timeout}s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers (bounded waits)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def open_archive(config: FleetConfig, data: Path) -> Any:
    """The archive library, for the bulk set-up of reps and codes."""
    try:
        from server.rules import open_archive as opener
    except ImportError:  # before the rules/storage split: SQLite only
        if config.archive and not config.archive.startswith("sqlite:"):
            raise RuntimeError("this server has no --archive support yet: only SQLite") from None
        import server.archive as archive_mod

        return archive_mod.SQLiteArchive(data)  # type: ignore[attr-defined,unused-ignore]
    return opener(data, url=config.archive)


def archive_bytes(config: FleetConfig, data: Path) -> int | None:
    """archive.db + its WAL for SQLite; pg_database_size for PostgreSQL (None without psycopg)."""
    url = config.archive or ""
    if url.startswith(("postgresql:", "postgres:")):
        try:
            import psycopg  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else None
    path = Path(urlsplit(url).path) if url.startswith("sqlite:") else data / "archive.db"
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


# --- HTTP -----------------------------------------------------------------------------


class Conn:
    """One HTTP/1.1 keep-alive connection, as one `fieldvault sync` run holds one.

    Hand-written on asyncio streams because the load generator shares the 2 cores with
    the server it measures: httpx's pool costs more CPU per request than the server
    does (O(pool) scans, and an import attempt per request), and its queue shows up as
    latency that is the client's, not the server's."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path_qs: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, dict[str, str], bytes]:
        return await asyncio.wait_for(self._request(method, path_qs, headers, body), self.timeout)

    async def _request(self, method: str, path_qs: str, headers: dict[str, str],
                       body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"{method} {path_qs} HTTP/1.1", f"host: {self.host}:{self.port}",
                f"content-length: {len(body)}", "accept-encoding: gzip",
                *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        if "content-length" in answer:
            content = await self.reader.readexactly(int(answer["content-length"]))
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            for _ in range(1_000_000):
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            content = b"".join(p[:-2] for p in parts)
        else:
            content = await self.reader.read()
            answer["connection"] = "close"
        if answer.get("content-encoding") == "gzip":
            content = gzip.decompress(content)
        if answer.get("connection", "").lower() == "close":
            self.close()
        return status, answer, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- one simulated agent --------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


def refusal(status: int, content: bytes) -> Refused:
    try:
        err = orjson.loads(content)
        return Refused(status, str(err.get("error", "http_error")), str(err.get("message", "")))
    except (ValueError, AttributeError):
        return Refused(status, "http_error", content[:200].decode(errors="replace"))


class Revoked(Exception):
    """The server says this device is revoked: hand over, wipe, stop (expected)."""


@dataclass
class Card:
    rev: int
    owned_since: datetime


class Agent:
    """A rep's laptop, in memory: keys, cursor, cards in scope, the outbox."""

    def __init__(self, index: int, rep_id: str, code: str, rng: random.Random) -> None:
        self.index, self.rep_id, self.code, self.rng = index, rep_id, code, rng
        self.sign_key = Ed25519PrivateKey.generate()
        self.box_key = X25519PrivateKey.generate()
        self.device_id = ""
        self.server_pub: Ed25519PublicKey | None = None
        self.server_pub_raw = b""
        self.archive_epoch = ""
        self.lease_epoch: int | None = None
        self.cursor = ""
        self.cards: dict[str, Card] = {}
        self.outbox: list[dict[str, Any]] = []
        self.seq = 0
        self.last_burst = datetime.now(UTC)
        self.wipe_order: tuple[dict[str, Any], str] | None = None  # (order, its request nonce)
        self.stopped = False  # revoked and wiped

    # -- wire --

    async def call(self, conn: Conn, stats: Stats, method: str, path: str,
                   params: dict[str, Any] | None = None, payload: Any = None) -> tuple[Any, str]:
        """One signed request, its answer's signature checked; (json, request nonce)."""
        path_qs = path + ("?" + urlencode(params) if params else "")
        body = orjson.dumps(payload) if payload is not None else b""
        ts, nonce = str(int(time.time())), secrets.token_urlsafe(18)
        sig = self.sign_key.sign(signing.request_message(method, path_qs, ts, nonce, body,
                                                         device_id=self.device_id))
        headers = {"content-type": "application/json", signing.HDR_DEVICE: self.device_id,
                   signing.HDR_TIMESTAMP: ts, signing.HDR_NONCE: nonce,
                   signing.HDR_SIGNATURE: signing.b64e(sig)}
        started = time.perf_counter()
        status, answer, content = await conn.request(method, path_qs, headers, body)
        stats.request_latency.setdefault(f"{method} {path}", []).append(time.perf_counter() - started)
        if status >= 400:
            raise refusal(status, content)
        assert self.server_pub is not None
        try:
            self.server_pub.verify(signing.b64d(answer.get(signing.HDR_SERVER_SIGNATURE.lower(), "")),
                                   signing.response_message(nonce, status, content))
        except (InvalidSignature, ValueError):
            raise Refused(status, "untrusted_response",
                          "answer not signed by the pinned server key") from None
        return orjson.loads(content), nonce

    async def enroll(self, conn: Conn) -> None:
        pub = self.sign_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
        box = self.box_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
        status, _, content = await conn.request("POST", "/v1/enroll", {
            "content-type": "application/json"}, orjson.dumps({
                "code": self.code, "device_name": f"fleet-{self.index:05d}",
                "sign_public_key": signing.b64e(pub), "box_public_key": signing.b64e(box)}))
        if status != 200:
            raise refusal(status, content)
        answer = orjson.loads(content)
        self.device_id = answer["device_id"]
        self.server_pub_raw = signing.b64d(answer["server_sign_public_key"])
        self.server_pub = Ed25519PublicKey.from_public_bytes(self.server_pub_raw)
        self.archive_epoch = answer["archive_epoch"]
        self._install_lease(answer["sealed_lease"])

    def _install_lease(self, sealed: dict[str, str]) -> None:
        payload = sealing.open_sealed(self.box_key, sealed, self.device_id.encode())
        self.lease_epoch = int(payload["lease"]["epoch"])

    # -- a rep's work, offline --

    def next_op(self, kind: str, entity_id: str, data: dict[str, Any], base_rev: int = 0) -> None:
        self.seq += 1
        self.outbox.append({"op_id": secrets.token_urlsafe(12), "seq": self.seq, "kind": kind,
                            "entity_id": entity_id, "base_rev": base_rev,
                            "at": iso(datetime.now(UTC)), "data": data})

    def log_burst(self, lo: int, hi: int, edit_chance: float) -> None:
        """Visits typed offline since the last burst, each to a customer this rep owns and
        dated inside its ownership; now and then a card edit on the rev last seen."""
        now = datetime.now(UTC)
        if not self.cards:
            return
        for _ in range(self.rng.randint(lo, hi)):
            cid = self.rng.choice(list(self.cards))
            start = max(self.last_burst, self.cards[cid].owned_since)
            span = max(0.0, (now - start).total_seconds() - 1)
            started = start + timedelta(seconds=self.rng.uniform(0, span) + 0.5)
            who = person(self.rng)
            data = {"customer_id": cid, "started_at": iso(started),
                    "ended_at": iso(started + timedelta(minutes=self.rng.randint(15, 90))),
                    "location": self.rng.choice(CITIES), "purpose": self.rng.choice(PURPOSES),
                    "summary": self.rng.choice(SUMMARIES).format(who=who),
                    "outcome": self.rng.choice(OUTCOMES), "competitors": self.rng.choice(COMPETITORS)}
            if self.rng.random() < 0.3:
                data["next_at"] = iso(started + timedelta(days=self.rng.randint(3, 30)))
                data["next_content"] = self.rng.choice(("送合同", "Bring the revised quote", "回访"))
            self.next_op("visit.create", "v_" + secrets.token_urlsafe(12), data)
        if self.rng.random() < edit_chance:
            cid = self.rng.choice(list(self.cards))
            self.next_op("customer.update", cid, self.rng.choice(CARD_EDITS)(self.rng),
                         base_rev=self.cards[cid].rev)
        self.last_burst = now

    # -- sync, as `fieldvault sync` does it --

    async def sync(self, conn: Conn, stats: Stats) -> None:
        """Lease check-in, push the outbox, pull to the end of the feed."""
        started = time.perf_counter()
        try:
            answer, _ = await self.call(conn, stats, "POST", "/v1/lease",
                                        payload={"have_epoch": self.lease_epoch})
            self._install_lease(answer["sealed_lease"])
            await self.push(conn, stats)
            await self.pull(conn, stats)
        except Refused as exc:
            if exc.code not in REVOKED_CODES:
                raise
            await self.hand_over(conn, stats)
            return
        except Revoked:
            await self.hand_over(conn, stats)
            return
        stats.syncs += 1
        stats.sync_latency.append(time.perf_counter() - started)

    async def push(self, conn: Conn, stats: Stats) -> None:
        if not self.outbox:
            return
        ops = self.outbox[:1000]
        answer, nonce = await self.call(conn, stats, "POST", "/v1/push",
                                        payload={"ops": ops, "archive_epoch": self.archive_epoch})
        self._take_results(ops, answer["results"], stats)
        if "wipe_order" in answer:
            self.wipe_order = (answer["wipe_order"], nonce)
            stats.final_flush_ops += len(ops)
            raise Revoked

    def _take_results(self, ops: list[dict[str, Any]], results: list[dict[str, Any]],
                      stats: Stats) -> None:
        sent = {op["op_id"]: op for op in ops}
        if {r["op_id"] for r in results} != set(sent):
            raise Refused(200, "bad_results", "the server answered for other operations")
        for r in results:
            op = sent[r["op_id"]]
            stats.ops[f"{op['kind']}:{r['status']}"] += 1
            if r["status"] == "rejected":
                stats.error("op_rejected", f"{op['kind']}: {r.get('reason')}")
            if op["kind"] == "customer.update" and r.get("rev") and op["entity_id"] in self.cards:
                self.cards[op["entity_id"]].rev = int(r["rev"])
        self.outbox = [op for op in self.outbox if op["op_id"] not in sent]

    async def pull(self, conn: Conn, stats: Stats) -> None:
        for _ in range(MAX_PULL_PAGES):
            answer, _ = await self.call(conn, stats, "GET", "/v1/pull",
                                        params={"cursor": self.cursor, "limit": PULL_PAGE})
            for change in answer["changes"]:
                stats.pulled[change["kind"]] += 1
                if change["kind"] == "evict":
                    self.cards.pop(change["id"], None)
                elif change["kind"] == "customer":
                    rec = change["record"]
                    if rec.get("owner_rep_id") == self.rep_id and rec.get("owned_since"):
                        self.cards[rec["id"]] = Card(int(rec["rev"]), parse_iso(rec["owned_since"]))
            self.archive_epoch = answer["archive_epoch"]
            if not answer["more"]:
                self.cursor = answer["cursor"]
                return
            if answer["cursor"] == self.cursor:
                raise Refused(200, "stuck_cursor", "the server cursor did not advance")
            self.cursor = answer["cursor"]
        raise Refused(200, "endless_pull", f"more than {MAX_PULL_PAGES} pages")

    async def hand_over(self, conn: Conn, stats: Stats) -> None:
        """Revoked: push what is unsynced (the final flush), obey the signed wipe order,
        send the receipt, stop."""
        from agent.wipe import make_receipt, verify_order

        if self.wipe_order is None and self.outbox:
            with contextlib.suppress(Revoked):
                await self.push(conn, stats)
        order = self.wipe_order
        if order is None:
            answer, nonce = await self.call(conn, stats, "GET", "/v1/wipe-order")
            order = (answer["wipe_order"], nonce)
        if not verify_order(order[0], order[1], self.server_pub_raw, self.device_id):
            raise Refused(200, "forged_wipe_order", "the wipe order is not signed for this request")
        self.outbox, self.cards, self.stopped = [], {}, True
        stats.revoked_agents += 1
        receipt = make_receipt(order[0], [], iso(datetime.now(UTC)), self.sign_key)
        await self.call(conn, stats, "POST", "/v1/wipe-receipt", payload=receipt)
        stats.wipe_receipts += 1


# --- the fleet ------------------------------------------------------------------------


@dataclass
class Event:
    at: float  # fraction of the run
    kind: str  # "reassign" | "depart"
    done: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.agents: list[Agent] = []
        self.events: list[Event] = []
        self.departing: Agent | None = None
        self.reassigned: list[tuple[str, Agent, Agent]] = []  # customer, from, to
        self.event_errors: list[str] = []
        self.tmp: Path | None = None
        self.server: Server | None = None
        self.console: Any = None
        self.setup_s: dict[str, float] = {}  # how long each set-up step took

    # -- set-up --

    def setup(self, data: Path) -> Server:
        cfg = self.config
        server = Server(cfg, data)
        server.cli("init")
        with self.step("reps and enrollment codes", cfg.agents) as advance:
            archive = open_archive(cfg, data)
            if archive.counts()["reps"]:
                raise RuntimeError(f"{data} already holds an archive with reps: give a new --data")
            for i in range(cfg.agents):
                name = f"{person(self.rng)} {i + 1:05d}"
                rep = archive.add_rep(name, None, self.rng.choice(("senior", "mid", "mid", "junior")))
                code, _ = archive.create_enroll_code(rep["id"], timedelta(hours=24))
                self.agents.append(Agent(i, rep["id"], code, random.Random(self.rng.random())))
                advance(1)
            if callable(getattr(archive, "close", None)):
                archive.close()
        with self.step("customers (customer import)", 1) as advance:
            csv_path = data.parent / f"{data.name}-customers.csv"
            with csv_path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["name", "decision_maker", "grade", "address", "phone", "industry",
                            "needs", "owner"])
                # Names and phones unique: the archive refuses a duplicate card.
                n = 0
                for agent in self.agents:
                    for _ in range(cfg.customers_per_rep):
                        n += 1
                        city = self.rng.choice(CITIES)
                        w.writerow([f"{company(self.rng)} {n:06d}", person(self.rng),
                                    self.rng.choice("ABCC"),
                                    f"{city}市{self.rng.randint(1, 999)}号",
                                    f"021-{10000000 + n}",
                                    self.rng.choice(INDUSTRIES), "", agent.rep_id])
            server.cli("customer", "import", str(csv_path))
            advance(1)
        if cfg.departure and len(self.agents) >= 3:
            self.departing = self.agents[-1]
            self.events.append(Event(0.5, "depart"))
        for k in range(cfg.reassignments):
            self.events.append(Event((k + 1) / (cfg.reassignments + 2), "reassign"))
        self.events.sort(key=lambda e: e.at)
        return server

    @contextlib.contextmanager
    def step(self, what: str, total: int) -> Iterator[Callable[[int], None]]:
        started = time.monotonic()
        try:
            if self.console is None:
                yield lambda n: None
                return
            with self._bar(what, total) as advance:
                yield advance
        finally:
            self.setup_s[what.split(" ")[0]] = round(time.monotonic() - started, 1)

    @contextlib.contextmanager
    def _bar(self, what: str, total: int) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(f"[bold]{what}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=False) as bar:
            task = bar.add_task(what, total=total)
            yield lambda n: bar.advance(task, n)

    def conn(self, server: Server) -> Conn:
        return Conn("127.0.0.1", server.port, self.config.request_timeout)

    async def enroll_all(self, server: Server) -> None:
        sem = asyncio.Semaphore(self.config.enroll_concurrency)
        with self.step("enroll devices over HTTP + first pull", len(self.agents)) as advance:
            async def one(agent: Agent) -> None:
                async with sem:
                    conn = self.conn(server)
                    try:
                        await agent.enroll(conn)
                        await agent.pull(conn, Stats())  # the first sync's pull: its scope
                    finally:
                        conn.close()
                    advance(1)
            await asyncio.gather(*(one(a) for a in self.agents))

    # -- the run --

    async def agent_loop(self, agent: Agent, server: Server, deadline: float) -> None:
        cfg = self.config
        # Spread the first syncs over one interval: laptops are not switched on in unison.
        await asyncio.sleep(agent.rng.uniform(0, cfg.sync_every))
        while time.monotonic() < deadline and not agent.stopped:
            agent.log_burst(*cfg.visits_per_sync, cfg.edit_chance)
            conn = self.conn(server)  # a fresh connection per sync, as a CLI run opens one
            try:
                await agent.sync(conn, self.stats)
            except Refused as exc:
                self.stats.error(f"http_{exc.status}_{exc.code}", f"{agent.rep_id}: {exc}")
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError, KeyError) as exc:
                self.stats.error(type(exc).__name__, f"{agent.rep_id}: {exc!r}")
            finally:
                conn.close()
            if agent.stopped:
                return
            pause = cfg.sync_every * agent.rng.uniform(0.5, 1.5)
            await asyncio.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    async def office(self, server: Server, t0: float, duration: float) -> None:
        """The office and HR, during the run: reassignments and the departure."""
        for event in self.events:
            await asyncio.sleep(max(0.0, t0 + event.at * duration - time.monotonic()))
            try:
                if event.kind == "depart" and self.departing is not None:
                    out = await server.acli("revoke", self.departing.rep_id, "--reason",
                                            "left the company (fleet simulation)",
                                            "--reassign-to", "pool")
                    event.detail = {"rep": self.departing.rep_id, "revoke": out}
                elif event.kind == "reassign":
                    await self.reassign(server, event)
                event.done = True
            except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                self.stats.error("office_" + event.kind, str(exc))

    async def reassign(self, server: Server, event: Event) -> None:
        live = [a for a in self.agents if not a.stopped and a is not self.departing]
        sources = [a for a in live if len(a.cards) >= 2]
        if not sources or len(live) < 2:
            raise RuntimeError("no agent to reassign a customer from")
        src = self.rng.choice(sources)
        dst = self.rng.choice([a for a in live if a is not src])
        cid = self.rng.choice(sorted(src.cards))
        await server.acli("customer", "assign", cid, dst.rep_id, "--reason", "territory change")
        self.reassigned.append((cid, src, dst))
        event.detail = {"customer": cid, "from": src.rep_id, "to": dst.rep_id}

    async def run_load(self, server: Server) -> dict[str, Any]:
        cfg = self.config
        await self.enroll_all(server)
        assert server.proc is not None
        tree = ProcTree(server.proc.pid)
        tree.sample()
        cpu0, host0 = tree.cpu_seconds(), host_cpu()
        size0 = archive_bytes(cfg, server.data)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        duration = cfg.minutes * 60
        t0 = time.monotonic()
        deadline = t0 + duration
        tasks = [asyncio.create_task(self.agent_loop(a, server, deadline)) for a in self.agents]
        office = asyncio.create_task(self.office(server, t0, duration))

        # The server's RSS at the end of each minute: flat after the first, or a leak.
        by_minute: list[float] = []

        async def monitor() -> None:
            while True:
                await asyncio.to_thread(tree.sample)
                if time.monotonic() - t0 >= 60 * (len(by_minute) + 1):
                    by_minute.append(round(tree.rss_last / 2**20, 1))
                await asyncio.sleep(1)

        sampler = asyncio.create_task(monitor())
        await self.watch(t0, duration)
        _, pending = await asyncio.wait(tasks + [office], timeout=STOP_GRACE_S + 5)
        for task in pending:
            task.cancel()
        if pending:
            self.stats.error("unfinished_at_deadline", f"{len(pending)} agents still syncing")
        wall = time.monotonic() - t0
        sampler.cancel()
        await asyncio.to_thread(tree.sample)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        size1 = archive_bytes(cfg, server.data)
        host1 = host_cpu()
        busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1])
        return {
            "wall_s": round(wall, 1),
            "server": {"cpu_s": round(tree.cpu_seconds() - cpu0, 1),
                       "cpu_cores_avg": round((tree.cpu_seconds() - cpu0) / wall, 2),
                       "rss_peak_mb": round(tree.rss_peak / 2**20, 1),
                       "rss_end_mb": round(tree.rss_last / 2**20, 1),
                       "rss_mb_by_minute": by_minute,
                       "rss_growth_after_minute_1_mb": (
                           round(tree.rss_last / 2**20 - by_minute[0], 1) if by_minute
                           else None),
                       "processes": tree.processes},
            "client_cpu_s": round(usage1.ru_utime + usage1.ru_stime
                                  - usage0.ru_utime - usage0.ru_stime, 1),
            "host": {"cpus": os.cpu_count(), "busy_pct": round(100 * busy, 1),
                     "loadavg_end": Path("/proc/loadavg").read_text().split()[:3]},
            "archive_bytes": {"before": size0, "after": size1,
                              "growth": None if size0 is None or size1 is None else size1 - size0},
        }

    async def watch(self, t0: float, duration: float) -> None:
        """Wait for the deadline, with a live line on stderr."""
        if self.console is None:
            await asyncio.sleep(duration)
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress("[bold]fleet", BarColumn(), TextColumn("{task.description}"),
                      TimeRemainingColumn(), console=self.console) as bar:
            task = bar.add_task("", total=duration)
            while (left := t0 + duration - time.monotonic()) > 0:
                lat = sorted(self.stats.sync_latency[-2000:])
                bar.update(task, completed=duration - left, description=(
                    f"syncs {self.stats.syncs}  ops {self.stats.ops_pushed()}  "
                    f"p95 {percentile(lat, 0.95) * 1000:.0f} ms  errors {sum(self.stats.errors.values())}"
                    f"  revoked {self.stats.revoked_agents}"))
                await asyncio.sleep(min(1.0, left))
            bar.update(task, completed=duration)

    def report(self, load: dict[str, Any]) -> dict[str, Any]:
        s, cfg = self.stats, self.config
        moves = [{"customer": cid, "from": src.rep_id, "to": dst.rep_id,
                  "seen_by_both": cid in dst.cards and cid not in src.cards}
                 for cid, src, dst in self.reassigned]
        departed = None
        if self.departing is not None:
            departed = {"rep": self.departing.rep_id, "stopped_by_revocation": self.departing.stopped,
                        "revoked_at_run_fraction": 0.5}
        visits = {k.split(":", 1)[1]: n for k, n in s.ops.items() if k.startswith("visit.create:")}
        return {
            "agents": cfg.agents, "minutes": cfg.minutes, "sync_every_s": cfg.sync_every,
            "archive": "postgresql" if (cfg.archive or "").startswith("postgres") else "sqlite",
            "workers": cfg.workers or 1,
            "syncs": s.syncs, "syncs_per_s": round(s.syncs / max(load["wall_s"], 1e-9), 2),
            "ops_pushed": s.ops_pushed(), "ops": dict(sorted(s.ops.items())),
            "visits_pushed": sum(visits.values()), "visits_accepted": visits.get("accepted", 0),
            "pulled": dict(s.pulled),
            "sync_latency_ms": latency_ms(s.sync_latency),
            "request_latency_ms": {k: latency_ms(v) for k, v in sorted(s.request_latency.items())},
            "errors": sum(s.errors.values()), "error_kinds": dict(s.errors),
            "error_samples": s.error_samples[:10],
            "revoked_agents": s.revoked_agents, "final_flush_ops": s.final_flush_ops,
            "wipe_receipts": s.wipe_receipts, "departed": departed,
            "reassignments": len(moves),
            "reassignments_seen_by_both": sum(m["seen_by_both"] for m in moves), "reassigned": moves,
            "events": [{"at": e.at, "kind": e.kind, "done": e.done} for e in self.events],
            "setup_s": self.setup_s,
            **load,
        }

    async def run(self) -> dict[str, Any]:
        cfg = self.config
        if cfg.progress:
            from rich.console import Console

            self.console = Console(stderr=True)
        if cfg.data is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="fieldvault-fleet-"))
            data = self.tmp / "server"
        else:
            data = cfg.data
        data.parent.mkdir(parents=True, exist_ok=True)
        server = self.server = await asyncio.to_thread(self.setup, data)
        await asyncio.to_thread(server.start)
        try:
            load = await self.run_load(server)
        finally:
            await asyncio.to_thread(server.stop)
        return self.report(load)

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run_fleet(config: FleetConfig) -> dict[str, Any]:
    """Run a whole simulation; the server is stopped (and a temporary folder removed)
    however it ends, Ctrl-C included."""
    fleet = Fleet(config)
    try:
        return asyncio.run(fleet.run())
    finally:
        fleet.cleanup()


def summary(r: dict[str, Any]) -> str:
    lat, srv, size = r["sync_latency_ms"], r["server"], r["archive_bytes"]
    growth = "n/a" if size["growth"] is None else f"{size['growth'] / 2**20:.1f} MiB"
    lines = [
        f"fleet: {r['agents']} agents x {r['minutes']} min ({r['archive']}, {r['workers']} worker(s)), "
        f"sync every ~{r['sync_every_s']:g}s",
        f"syncs {r['syncs']} ({r['syncs_per_s']}/s), ops pushed {r['ops_pushed']} "
        f"(visits {r['visits_pushed']}, accepted {r['visits_accepted']})",
        f"sync latency p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  max {lat['max']} ms",
        f"errors {r['errors']} {r['error_kinds'] or ''}",
        f"departure: {r['revoked_agents']} agent(s) stopped by revocation, final flush "
        f"{r['final_flush_ops']} op(s), {r['wipe_receipts']} wipe receipt(s); reassignments "
        f"{r['reassignments']} ({r['reassignments_seen_by_both']} seen by both agents)",
        f"server CPU {srv['cpu_s']} s ({srv['cpu_cores_avg']} cores avg), RSS peak "
        f"{srv['rss_peak_mb']} MiB, end {srv['rss_end_mb']} MiB (by minute: "
        f"{srv['rss_mb_by_minute']}), {srv['processes']} process(es)"
        + (" (PostgreSQL's own processes not included)" if r["archive"] == "postgresql" else ""),
        "set-up " + ", ".join(f"{k} {v}s" for k, v in r["setup_s"].items()),
        f"archive growth {growth}; client CPU {r['client_cpu_s']} s; host busy "
        f"{r['host']['busy_pct']}% of {r['host']['cpus']} CPUs (everything on it, us included)",
    ]
    for name, lr in r["request_latency_ms"].items():
        lines.append(f"  {name:<20} n={lr['n']:<7} p50 {lr['p50']} ms  p95 {lr['p95']} ms  "
                     f"p99 {lr['p99']} ms")
    for sample in r["error_samples"]:
        lines.append(f"  error: {sample}")
    return "\n".join(lines)


def parse_range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    a, b = int(lo), int(hi or lo)
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError("give LO-HI with 0 <= LO <= HI, e.g. 1-10")
    return a, b


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, required=True, help="simulated reps (one device each)")
    p.add_argument("--minutes", type=float, required=True, help="length of the run, real minutes")
    p.add_argument("--sync-every", type=float, default=60.0,
                   help="mean seconds between one agent's syncs, jittered 0.5x-1.5x [60]")
    p.add_argument("--visits-per-sync", type=parse_range, default=(1, 10),
                   help="visits logged offline between two syncs, LO-HI [1-10]")
    p.add_argument("--edit-chance", type=float, default=0.3, help="chance a burst edits a card [0.3]")
    p.add_argument("--customers-per-rep", type=int, default=20)
    p.add_argument("--reassignments", type=int, default=3)
    p.add_argument("--no-departure", action="store_true", help="no rep is revoked during the run")
    p.add_argument("--archive", help="passed to fieldvault-server as --archive URL")
    p.add_argument("--workers", type=int, help="passed to `fieldvault-server serve` as --workers")
    p.add_argument("--replica", help="passed to `serve` as --replica (e.g. none)")
    p.add_argument("--data", type=Path, help="server data folder [a fresh temporary one]")
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    a = p.parse_args(argv)
    if a.agents < 1 or a.minutes <= 0 or a.sync_every <= 0:
        p.error("--agents, --minutes and --sync-every must be positive")
    config = FleetConfig(
        agents=a.agents, minutes=a.minutes, sync_every=a.sync_every,
        customers_per_rep=a.customers_per_rep, visits_per_sync=a.visits_per_sync,
        edit_chance=a.edit_chance, reassignments=a.reassignments, departure=not a.no_departure,
        archive=a.archive or os.environ.get("FIELDVAULT_ARCHIVE_URL"), workers=a.workers,
        replica=a.replica, data=a.data, seed=a.seed,
        progress=not a.quiet)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the server goes down too
    try:
        report = run_fleet(config)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; the server was stopped\n")
        return 130
    except RuntimeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    if a.json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(summary(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
