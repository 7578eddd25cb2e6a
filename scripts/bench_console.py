"""How fast the console's pages are on a big archive: 100,000 customers and 1,000,000
visits (200 reps in 4 teams of 50, three years of visits, 5% waiting for review, 20%
called back), against a real `fieldvault-server serve` on SQLite, signed in as a
manager through the console's own sign-in form. Prints each page's median and worst
time over several requests. Usage: python scripts/bench_console.py [DIR] (~2 minutes
to build the archive; kept in DIR for another run)."""

from __future__ import annotations

import random
import re
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from schema.clock import iso
from server.rules import Archive, init_archive, open_archive
from tests.harness import ServerProcess

CUSTOMERS, VISITS, TEAMS, REPS_PER_TEAM, DAYS = 100_000, 1_000_000, 4, 50, 1000
PASSWORD = "correct horse battery"


def build(data: Path) -> None:
    archive = init_archive(data)
    now = datetime.now(UTC)
    reps: list[str] = []
    for t in range(TEAMS):
        archive.add_rep(f"Boss {t}")
        for r in range(REPS_PER_TEAM):
            reps.append(archive.add_rep(f"Rep {t}-{r:02d}", manager=f"Boss {t}")["id"])
        archive.add_staff(f"mgr{t}", "manager", f"Boss {t}", password=PASSWORD)
    archive.add_staff("vera", "verifier", password=PASSWORD)
    quiet_pool(archive)
    archive.close()
    rnd = random.Random(7)
    conn = sqlite3.connect(data / "archive.db")
    conn.execute("PRAGMA journal_mode=WAL")
    created = iso(now - timedelta(days=DAYS + 1))
    customers = []
    for i in range(CUSTOMERS):
        owner = None if i % 10 == 0 else reps[i % len(reps)]
        served = iso(now - timedelta(days=rnd.randint(0, 200)))
        customers.append((f"c{i:07d}", 1, f"FV{i + 1:06d}", f"Customer {i}", "ABC"[i % 3],
                          f"0571-{i:08d}", "admin", created, owner, created if owner else None,
                          "assigned" if owner else "pool", served, created, 1 if i % 97 == 0 else 0))
    conn.executemany(
        "INSERT INTO customers (id, rev, card_no, name, grade, phone, created_by, created_at,"
        " owner_rep_id, owned_since, ownership_source, last_served_at, updated_at, locked)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", customers)
    batch = []
    for i in range(VISITS):
        c = i % CUSTOMERS
        rep = reps[c % len(reps)] if c % 10 else reps[i % len(reps)]
        started = iso(now - timedelta(seconds=rnd.randint(60, DAYS * 86400)))
        status = "submitted" if i % 20 == 0 else "approved"
        callback = (None, "pending", "verified", "verified", "disputed")[i % 5] if i % 4 == 0 else None
        batch.append((f"v{i:08d}", 1, f"c{c:07d}", rep, started, "order", "Ordered", status,
                      started, started, callback,
                      "staff:vera" if callback in ("verified", "disputed") else None,
                      started if callback in ("verified", "disputed") else None))
        if len(batch) == 50_000:
            conn.executemany(
                "INSERT INTO visits (id, rev, customer_id, rep_id, started_at, purpose, summary,"
                " status, created_at, updated_at, callback, callback_by, callback_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch = []
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def quiet_pool(archive: Archive) -> None:
    """Pool returns of a year: the serve's start-up jobs run would otherwise spend the
    first minutes returning the generated cards (last served up to 200 days ago), and
    the figures would time that, not the pages."""
    if not any(s["name"] == "bench-admin" for s in archive.list_staff()):
        archive.add_staff("bench-admin", "admin")
    archive.set_pool_policy({"return_days_a": 365, "return_days_b": 365, "return_days_c": 365},
                            by="bench-admin")


def sign_in(client: httpx.Client, name: str) -> None:
    form = client.get("/console/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    answer = client.post("/console/sign-in", data={"name": name, "password": PASSWORD,
                                                   "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.text


def timed(client: httpx.Client, path: str, rounds: int = 7) -> tuple[float, float, str]:
    times = []
    body = ""
    for _ in range(rounds):
        t0 = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        body = answer.text
    return statistics.median(times), max(times), body


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/console-bench")
    data = root / "srv"
    if not (data / "archive.db").exists():
        t0 = time.perf_counter()
        build(data)
        print(f"built {CUSTOMERS} customers, {VISITS} visits in {time.perf_counter() - t0:.0f} s")
    else:
        quiet_pool(open_archive(data))
    # No replica: the figures are the pages', not litestream copying a fresh archive.
    server = ServerProcess(data, replica="none").start(timeout=180)
    try:
        for who, paths in (("mgr1", ["/console/team", "/console/approvals", "/console/customers",
                                     "/console/customers?grade=A&days=30",
                                     "/console/customers?locked=yes", "/console/customers?pool=yes",
                                     "/console/disputes", "/console/plans",
                                     "/console/reports/weekly"]),
                           ("vera", ["/console/callbacks"])):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                sign_in(client, who)
                for path in paths:
                    median, worst, body = timed(client, path)
                    print(f"{who:5} {path:42} median {median:6.1f} ms  worst {worst:6.1f} ms")
                    nxt = re.search(r'href="(/console/(?:customers|approvals)\?[^"]*after=[^"]+)"', body)
                    if nxt:
                        page = nxt.group(1).replace("&amp;", "&")
                        median, worst, _ = timed(client, page)
                        print(f"{who:5} {'  next page of ' + path:42} median {median:6.1f} ms  "
                              f"worst {worst:6.1f} ms")
                if who == "mgr1":
                    rep = re.search(r'href="/console/reps/([^"]+)"', timed(client, "/console/team", 1)[2])
                    assert rep
                    median, worst, _ = timed(client, f"/console/reps/{rep.group(1)}")
                    print(f"{who:5} {'/console/reps/<rep>':42} median {median:6.1f} ms  "
                          f"worst {worst:6.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
