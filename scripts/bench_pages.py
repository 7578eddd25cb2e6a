"""Page timings of the two web faces, run by `scripts/bench` as its `console` and `ui`
sections (docs/BENCHMARKS.md, "Console and UI pages"). Each page is requested several
times over loopback; one JSON line per page gives its median and p95 with the target
and whether the p95 meets it:

- console (issue 13: every page under 300 ms): 100,000 customers and 1,000,000 visits
  times `--scale` (200 reps in 4 teams of 50, three years of visits, 5% waiting for
  review, 20% called back, a laptop per rep), a real `fieldvault-server serve` on
  SQLite, signed in as a manager, the verifier, an admin and HR through the console's
  own sign-in form; the policy and departure previews too (posts that write nothing);
- ui (issue 12: a page under 200 ms, search as you type under 50 ms): a real
  `fieldvault ui` over a real SQLCipher vault of 20,000 customers + 80,000 visits
  times `--scale`, filled by bulk insert after a real enrollment, measured with the
  server stopped; and the same library calls in process as CPU time (no target).

The archives and vaults are built with direct SQL (a bench set-up); what is timed
always goes through HTTP to the real processes.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.store import CUSTOMER_COLUMNS, VISIT_COLUMNS, new_id  # noqa: E402
from schema.clock import iso  # noqa: E402
from server.rules import Archive, init_archive  # noqa: E402
from tests import harness  # noqa: E402
from tests.uiproc import UIProcess  # noqa: E402

CONSOLE_MS, UI_PAGE_MS, UI_SEARCH_MS = 300.0, 200.0, 50.0
PASSWORD = "correct horse battery"
Emit = Callable[[dict[str, Any]], None]


# --- measuring ---------------------------------------------------------------------------


def timed(client: httpx.Client, method: str, url: str, rounds: int,
          ok: tuple[int, ...] = (200,), **kw: Any) -> tuple[list[float], str]:
    """Wall times (ms) of `rounds` requests, and the last answer's body."""
    out, body = [], ""
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.request(method, url, **kw)
        out.append((time.perf_counter() - began) * 1000)
        assert answer.status_code in ok, (url, answer.status_code, answer.text[:300])
        body = answer.text
    return out, body


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def figure(emit: Emit, section: str, page: str, times: list[float],
           target: float | None, **extra: Any) -> None:
    """One page's line: median and p95, and pass when the p95 is within the target."""
    med, worst = statistics.median(times), p95(times)
    verdict = None if target is None else worst <= target
    emit({"figure": f"{section}_page", "page": page, "median_ms": round(med, 1),
          "p95_ms": round(worst, 1), "n": len(times), "target_ms": target, "pass": verdict,
          **extra})
    mark = "" if verdict is None else ("  pass" if verdict else "  FAIL")
    goal = "" if target is None else f"  target {target:.0f} ms"
    print(f"[{section}] {page:<46} median {med:7.1f} ms  p95 {worst:7.1f} ms{goal}{mark}",
          file=sys.stderr, flush=True)


def csrf(html: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token, "no CSRF token on the page"
    return token.group(1)


# --- the console -------------------------------------------------------------------------

TEAMS, REPS_PER_TEAM, DAYS = 4, 50, 1000


def build_console(data: Path, customers: int, visits: int) -> None:
    """Staff, reps and a laptop per rep through the library; cards and visits by SQL."""
    archive = init_archive(data)
    reps: list[str] = []
    for t in range(TEAMS):
        archive.add_rep(f"Boss {t}")
        for r in range(REPS_PER_TEAM):
            reps.append(archive.add_rep(f"Rep {t}-{r:02d}", manager=f"Boss {t}")["id"])
        archive.add_staff(f"mgr{t}", "manager", f"Boss {t}", password=PASSWORD)
    archive.add_staff("vera", "verifier", password=PASSWORD)
    archive.add_staff("root", "admin", password=PASSWORD)
    archive.add_staff("hana", "hr", password=PASSWORD)
    for person in archive.list_reps():
        code, _ = archive.create_enroll_code(person["id"], timedelta(hours=1))
        archive.enroll(code, f"{person['name']} laptop", os.urandom(32), os.urandom(32))
    quiet_pool(archive)
    archive.close()
    rnd = random.Random(7)
    now = datetime.now(UTC)
    conn = sqlite3.connect(data / "archive.db")
    conn.execute("PRAGMA journal_mode=WAL")
    created = iso(now - timedelta(days=DAYS + 1))
    rows = []
    for i in range(customers):
        owner = None if i % 10 == 0 else reps[i % len(reps)]
        served = iso(now - timedelta(days=rnd.randint(0, 200)))
        rows.append((f"c{i:07d}", 1, f"FV{i + 1:06d}", f"Customer {i}", "ABC"[i % 3],
                     f"0571-{i:08d}", "admin", created, owner, created if owner else None,
                     "assigned" if owner else "pool", served, created, 1 if i % 97 == 0 else 0))
    conn.executemany(
        "INSERT INTO customers (id, rev, card_no, name, grade, phone, created_by, created_at,"
        " owner_rep_id, owned_since, ownership_source, last_served_at, updated_at, locked)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    batch: list[tuple[Any, ...]] = []
    for i in range(visits):
        c = i % customers
        rep = reps[c % len(reps)] if c % 10 else reps[i % len(reps)]
        started = iso(now - timedelta(seconds=rnd.randint(60, DAYS * 86400)))
        callback = (None, "pending", "verified", "verified", "disputed")[i % 5] if i % 4 == 0 else None
        called = callback in ("verified", "disputed")
        batch.append((f"v{i:08d}", 1, f"c{c:07d}", rep, started, "order", "Ordered",
                      "submitted" if i % 20 == 0 else "approved", started, started, callback,
                      "staff:vera" if called else None, started if called else None))
        if len(batch) == 50_000 or i == visits - 1:
            conn.executemany(
                "INSERT INTO visits (id, rev, customer_id, rep_id, started_at, purpose, summary,"
                " status, created_at, updated_at, callback, callback_by, callback_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch = []
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def quiet_pool(archive: Archive) -> None:
    """Pool returns of a year: the serve's start-up jobs would otherwise spend the first
    minutes returning the generated cards (last served up to 200 days ago), and the
    figures would time that, not the pages."""
    if not any(s["name"] == "bench-admin" for s in archive.list_staff()):
        archive.add_staff("bench-admin", "admin")
    archive.set_pool_policy({"return_days_a": 365, "return_days_b": 365, "return_days_c": 365},
                            by="bench-admin")


def sign_in(client: httpx.Client, name: str) -> None:
    token = csrf(client.get("/console/sign-in").text)
    answer = client.post("/console/sign-in", data={"name": name, "password": PASSWORD,
                                                   "csrf_token": token})
    assert answer.status_code == 303, answer.text


CONSOLE_PAGES = (
    ("mgr1", ("/console/team", "/console/approvals", "/console/customers",
              "/console/customers?grade=A&days=30", "/console/customers?locked=yes",
              "/console/customers?pool=yes", "/console/disputes", "/console/plans",
              "/console/reports/weekly", "/console/fleet")),
    ("vera", ("/console/callbacks",)),
    ("root", ("/console/fleet", "/console/admin/health", "/console/admin/audit",
              "/console/admin/audit?action=rep.", "/console/admin/policies",
              "/console/admin/review", "/console/admin/staff", "/console/admin/enroll")),
    ("hana", ("/console/hr/people", "/console/hr/departures", "/console/hr/tokens")),
)
# Posts that write nothing, each from the page whose form sends it.
CONSOLE_POSTS = {
    "root": ("/console/admin/policies/preview", {"return_days_c": "30", "warn_days": "10"}),
    "hana": ("/console/hr/departures/preview", {"rep": "Rep 1-07", "mode": "team",
                                                 "reason": "bench"}),
}


def console_section(work: Path, scale: float, rounds: int, emit: Emit) -> None:
    customers, visits = max(1000, int(100_000 * scale)), max(10_000, int(1_000_000 * scale))
    data = work / "srv"
    began = time.perf_counter()
    build_console(data, customers, visits)
    print(f"[console] built {customers} customers, {visits} visits in "
          f"{time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    scope = {"customers": customers, "visits": visits}
    # No replica: the figures are the pages', not Litestream copying a fresh archive.
    server = harness.ServerProcess(data, replica="none").start(timeout=180)
    try:
        for who, paths in CONSOLE_PAGES:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                sign_in(client, who)
                for path in paths:
                    times, body = timed(client, "GET", path, rounds)
                    figure(emit, "console", f"{who} {path}", times, CONSOLE_MS, **scope)
                    nxt = re.search(r'href="(/console/(?:customers|approvals)\?[^"]*after=[^"]+)"',
                                    body)
                    if nxt:
                        times, _ = timed(client, "GET", nxt.group(1).replace("&amp;", "&"), rounds)
                        figure(emit, "console", f"{who} next page of {path}", times, CONSOLE_MS,
                               **scope)
                if who == "mgr1":
                    rep = re.search(r'href="/console/reps/([^"]+)"',
                                    timed(client, "GET", "/console/team", 1)[1])
                    assert rep
                    times, _ = timed(client, "GET", f"/console/reps/{rep.group(1)}", rounds)
                    figure(emit, "console", f"{who} /console/reps/<rep>", times, CONSOLE_MS,
                           **scope)
                if who in CONSOLE_POSTS:
                    path, form = CONSOLE_POSTS[who]
                    times = []
                    for _ in range(rounds):
                        token = csrf(client.get(path.rsplit("/", 1)[0]).text)
                        times += timed(client, "POST", path, 1,
                                       data={**form, "csrf_token": token})[0]
                    figure(emit, "console", f"{who} POST {path}", times, CONSOLE_MS, **scope)
    finally:
        server.stop()


# --- the rep's UI ------------------------------------------------------------------------

CITIES = ["上海", "北京", "杭州", "深圳", "广州", "南京", "苏州", "成都", "武汉", "西安"]
TRADES = ["贸易", "科技", "食品", "物流", "机械", "电子", "医药", "纺织", "建材", "化工"]
EN = ["Acme", "Harbor", "Summit", "Pioneer", "Golden", "Evergreen", "Blue River", "Northstar"]
EN_TRADE = ["Trading", "Logistics", "Foods", "Machinery", "Electronics", "Textiles"]
TYPED = ["上海华东", "杭州食品", "Acme Tr", "Harbor Log", "FV0123", "需求 科技"]


def fill_vault(home: Path, rep_id: str, customers: int, visits: int) -> None:
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
            row: dict[str, Any] = {c: "" for c in CUSTOMER_COLUMNS}
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


def ui_in_process(home: Path, rounds: int, emit: Emit) -> None:
    """The pages' library calls in process, as CPU time of the calling thread (SQLCipher
    runs in it): what they cost without the other processes sharing the machine."""
    from agent import service
    from agent.home import AgentConfig

    config = AgentConfig.load(home)
    assert config is not None, "the vault is enrolled"
    with harness.open_store(home) as store:
        some = store.conn.execute("SELECT id FROM customers LIMIT 1 OFFSET 777").fetchone()[0]
        calls: list[tuple[str, Callable[[], object]]] = [
            *((f"search '{q}' (cpu)", lambda q=q: service.search_customers(store, q))
              for q in ["上", "上海", "Ac", "Acme Tr", "FV0123", "需求 科技", "zz"]),
            ("search grade A + idle 200 days (cpu)",
             lambda: service.search_customers(store, "", "A", 200)),
            ("today (cpu)", lambda: service.today(store)),
            ("sync status (cpu)", lambda: service.status(home, config, store)),
            ("customer card (cpu)", lambda: service.customer_card(store, some)),
        ]
        for label, call in calls:
            call()
            cpu = []
            for _ in range(rounds):
                began = time.thread_time()
                call()
                cpu.append((time.thread_time() - began) * 1000)
            figure(emit, "ui", label, cpu, None)


def ui_section(work: Path, scale: float, rounds: int, emit: Emit) -> None:
    customers, visits = max(500, int(20_000 * scale)), max(2000, int(80_000 * scale))
    data, home = work / "srv", work / "home"
    archive = init_archive(data)
    rep = archive.add_rep("李伟")["id"]
    archive.close()
    server = harness.ServerProcess(data).start()
    try:
        harness.lib_enroll(data, home, server.url, rep)
        harness.lib_sync(home)
    finally:
        server.stop()  # measured with the server down: the UI never waits on it
    fill_vault(home, rep, customers, visits)
    scope = {"customers": customers, "visits": visits}
    ui_in_process(home, rounds, emit)
    ui = UIProcess(home, "ui").start()
    try:
        with httpx.Client(base_url=ui.base, timeout=30, follow_redirects=False) as client:
            client.get(ui.launch_url.removeprefix(ui.base))
            with harness.open_store(home) as store:
                some = store.conn.execute("SELECT id FROM customers LIMIT 1 OFFSET 777").fetchone()[0]
                visit = store.conn.execute("SELECT id FROM visits LIMIT 1 OFFSET 999").fetchone()[0]
            client.get("/")  # the first request opens the vault (key unwrap): not a page load
            typed: list[float] = []
            for word in TYPED:  # each prefix, as the page's script sends them
                for n in range(1, len(word) + 1):
                    typed += timed(client, "GET", "/customers/rows", max(1, rounds // 4),
                                   params={"q": word[:n]})[0]
            figure(emit, "ui", "search as you type (every prefix)", typed, UI_SEARCH_MS, **scope)
            figure(emit, "ui", "search: grade A, idle 200 days",
                   timed(client, "GET", "/customers/rows", rounds,
                         params={"q": "", "grade": "A", "idle": "200"})[0], UI_SEARCH_MS, **scope)
            for label, url in [("Today /", "/"), ("Customers /customers", "/customers"),
                               ("Customer card", f"/customers/{some}"),
                               ("Log visit /visits/new", "/visits/new"),
                               ("Visit", f"/visits/{visit}"), ("Plan /plan", "/plan"),
                               ("Sync /sync", "/sync")]:
                figure(emit, "ui", label, timed(client, "GET", url, rounds)[0], UI_PAGE_MS,
                       **scope)
            form = {"csrf_token": csrf(client.get(f"/visits/new?customer={some}").text),
                    "customer_id": some, "purpose": "service", "summary": "bench visit",
                    "started_at": ""}
            figure(emit, "ui", "save a visit, server down (POST /visits)",
                   timed(client, "POST", "/visits", rounds, ok=(200, 303), data=form)[0],
                   UI_PAGE_MS, **scope)
    finally:
        ui.stop()


SECTIONS: dict[str, Callable[[Path, float, int, Emit], None]] = {
    "console": console_section, "ui": ui_section}

