"""Figures for the rep's local UI (issue 12), printed, never asserted:

- search as you type at a 20,000-customer vault: GET /customers/rows?q=... for each
  prefix of a few typed words (Chinese and English), as the page's script sends them;
- page load at a 100,000-record vault (20,000 customers + 80,000 visits): GET of each
  page, server time as the browser sees it (HTTP round trip over loopback);
- saving a visit (POST /visits) with the server down.

A real `fieldvault ui` process over a real SQLCipher vault. The vault is filled by
bulk insert straight into its tables (a bench set-up, not a sync), after a real
enrollment against a server that is stopped before measuring.
Usage: .venv/bin/python scripts/bench_ui.py [--customers N] [--visits M] [--rounds R]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.store import CUSTOMER_COLUMNS, VISIT_COLUMNS, new_id  # noqa: E402
from schema.clock import iso  # noqa: E402
from server.rules import init_archive  # noqa: E402
from tests import harness  # noqa: E402
from tests.uiproc import UIProcess  # noqa: E402

CITIES = ["上海", "北京", "杭州", "深圳", "广州", "南京", "苏州", "成都", "武汉", "西安"]
TRADES = ["贸易", "科技", "食品", "物流", "机械", "电子", "医药", "纺织", "建材", "化工"]
EN = ["Acme", "Harbor", "Summit", "Pioneer", "Golden", "Evergreen", "Blue River", "Northstar"]
EN_TRADE = ["Trading", "Logistics", "Foods", "Machinery", "Electronics", "Textiles"]


def fill(home: Path, rep_id: str, customers: int, visits: int) -> None:
    from datetime import UTC, datetime, timedelta

    rnd = random.Random(12)
    now = datetime.now(UTC)
    with harness.open_store(home) as store:
        crow, ids = [], []
        for i in range(customers):
            if i % 3:
                name = f"{rnd.choice(CITIES)}{rnd.choice(CITIES)}{rnd.choice(TRADES)}有限公司{i}"
            else:
                name = f"{rnd.choice(EN)} {rnd.choice(EN_TRADE)} Ltd {i}"
            cid = new_id()
            ids.append(cid)
            # An owned card was served within the 90-day return rule (else it would be
            # back in the pool): the last visit between 1 and 89 days ago.
            when = iso(now - timedelta(days=rnd.randint(1, 89), minutes=rnd.randint(0, 1439)))
            row = {c: "" for c in CUSTOMER_COLUMNS}
            row.update(id=cid, rev=1, card_no=f"FV{i:06d}", name=name, grade=rnd.choice("ABC"),
                       phone=f"+86 138 {i:08d}", notes=f"需求 {rnd.choice(TRADES)} notes {i}",
                       area=rnd.choice(CITIES), created_by=rep_id, created_at=when,
                       owner_rep_id=rep_id, owned_since=when, ownership_source="assigned",
                       last_served_at=when, updated_at=when, locked=0)
            crow.append(tuple(row[c] for c in CUSTOMER_COLUMNS))
        vrow = []
        for i in range(visits):
            when = iso(now - timedelta(days=90, minutes=rnd.randint(0, 300 * 1440)))
            row = {c: "" for c in VISIT_COLUMNS}
            row.update(id=new_id(), rev=1, customer_id=ids[i % len(ids)], rep_id=rep_id,
                       planned=0, started_at=when, ended_at=None, purpose="service",
                       summary=f"拜访 {i} 检修包装线 follow-up", next_at=None, status="approved",
                       created_at=when, updated_at=when, reviewed_by=None, reviewed_at=None,
                       callback=None)
            vrow.append(tuple(row[c] for c in VISIT_COLUMNS))
        with store.transaction() as c:
            c.executemany(f"INSERT INTO customers ({', '.join(CUSTOMER_COLUMNS)}) VALUES "
                          f"({', '.join('?' * len(CUSTOMER_COLUMNS))})", crow)
            c.executemany(f"INSERT INTO visits ({', '.join(VISIT_COLUMNS)}) VALUES "
                          f"({', '.join('?' * len(VISIT_COLUMNS))})", vrow)


def timed(client: httpx.Client, method: str, url: str, rounds: int, **kw: object) -> list[float]:
    out = []
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.request(method, url, **kw)  # type: ignore[arg-type]
        out.append((time.perf_counter() - began) * 1000)
        assert answer.status_code in (200, 303), (url, answer.status_code, answer.text[:300])
    return out


def show(label: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"  {label:<44} median {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   "
          f"max {ms[-1]:6.1f} ms  (n={len(ms)})")


def cpu_figures(home: Path, rounds: int) -> None:
    """The same work in process, as CPU time of the calling thread (SQLCipher runs in
    it): what the pages cost without the other processes sharing the machine."""
    from agent import service

    def run(label: str, f: object) -> None:
        f()  # type: ignore[operator]
        wall, cpu = [], []
        for _ in range(rounds):
            w, c = time.perf_counter(), time.thread_time()
            f()  # type: ignore[operator]
            wall.append((time.perf_counter() - w) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
        print(f"  {label:<44} cpu median {statistics.median(cpu):6.1f} ms   "
              f"wall median {statistics.median(wall):6.1f} ms")

    with harness.open_store(home) as store:
        some = store.conn.execute("SELECT id FROM customers LIMIT 1 OFFSET 777").fetchone()[0]
        print("in process (CPU time of the page's library calls):")
        for q in ["上", "上海", "华东", "Ac", "Acme Tr", "FV0123", "需求 科技", "zz"]:
            run(f"search '{q}'", lambda q=q: service.search_customers(store, q))
        run("search filters grade A + idle 200 days",
            lambda: service.search_customers(store, "", "A", 200))
        run("today (plan, follow-ups, pool, returned)", lambda: service.today(store))
        run("sync page status", lambda: service.status(home, _config(home), store))
        run("customer card", lambda: service.customer_card(store, some))


def _config(home: Path) -> object:
    from agent.home import AgentConfig

    return AgentConfig.load(home)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--visits", type=int, default=80_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    data = root / "srv"
    archive = init_archive(data)
    rep = archive.add_rep("李伟")["id"]
    server = harness.ServerProcess(data).start()
    try:
        harness.lib_enroll(data, root / "home", server.url, rep)
        harness.lib_sync(root / "home")
    finally:
        server.stop()  # measured with the server down: the UI never waits on it
    began = time.perf_counter()
    fill(root / "home", rep, args.customers, args.visits)
    print(f"vault: {args.customers} customers + {args.visits} visits "
          f"(filled in {time.perf_counter() - began:.1f} s)")
    cpu_figures(root / "home", args.rounds)
    ui = UIProcess(root / "home", "ui").start()
    try:
        with httpx.Client(base_url=ui.base, timeout=30, follow_redirects=False) as client:
            client.get(ui.launch_url.removeprefix(ui.base))
            with harness.open_store(root / "home") as store:
                some = store.conn.execute("SELECT id FROM customers LIMIT 1 OFFSET 777").fetchone()[0]
                visit = store.conn.execute("SELECT id FROM visits LIMIT 1 OFFSET 999").fetchone()[0]
            client.get("/")  # first request opens the vault (key unwrap): not a page load
            print("search as you type (GET /customers/rows?q=prefix, each prefix typed):")
            all_ms: list[float] = []
            for word in ["上海华东", "杭州食品", "Acme Tr", "Harbor Log", "FV0123", "需求 科技"]:
                ms: list[float] = []
                for n in range(1, len(word) + 1):
                    ms += timed(client, "GET", "/customers/rows", max(1, args.rounds // 4),
                                params={"q": word[:n]})
                all_ms += ms
                show(f"'{word}'", ms)
            show("all prefixes", all_ms)
            filt = timed(client, "GET", "/customers/rows", args.rounds,
                         params={"q": "", "grade": "A", "idle": "200"})
            show("filters: grade A, not visited for 200 days", filt)
            print(f"page load at {args.customers + args.visits} records:")
            for label, url in [("Today /", "/"), ("Customers /customers", "/customers"),
                               ("Customer card", f"/customers/{some}"),
                               ("Log visit /visits/new", "/visits/new"),
                               ("Visit", f"/visits/{visit}"), ("Plan /plan", "/plan"),
                               ("Sync /sync", "/sync")]:
                show(label, timed(client, "GET", url, args.rounds))
            page = client.get(f"/visits/new?customer={some}").text
            token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
            assert token
            form = {"csrf_token": token.group(1), "customer_id": some, "purpose": "service",
                    "summary": "bench visit", "started_at": ""}
            show("save a visit, server down (POST /visits)",
                 timed(client, "POST", "/visits", args.rounds, data=form))
    finally:
        ui.stop()
    print(f"(home left in {root} for inspection)")


if __name__ == "__main__":
    main()
