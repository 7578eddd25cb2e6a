"""How fast the HR, admin and fleet pages are on the big archive of bench_console.py
(100,000 customers, 1,000,000 visits, 200 reps), with a laptop per rep, signed in as an
admin, an HR person and a manager through the console's sign-in form; the departure and
policy previews too (posts that write nothing). Prints each page's median and worst
time. Usage: python scripts/bench_console_ops.py [DIR] (shares DIR with bench_console.py)."""

from __future__ import annotations

import os
import re
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_console import PASSWORD, build, sign_in, timed  # noqa: E402
from server.rules import open_archive  # noqa: E402
from tests.harness import ServerProcess  # noqa: E402


def add_oversight(data: Path) -> None:
    """Admin and HR accounts, and a laptop for every rep (once)."""
    archive = open_archive(data)
    try:
        if any(a["name"] == "root" for a in archive.list_staff()):
            return
        archive.add_staff("root", "admin", password=PASSWORD)
        archive.add_staff("hana", "hr", password=PASSWORD)
        for rep in archive.list_reps():
            code, _ = archive.create_enroll_code(rep["id"], timedelta(hours=1))
            archive.enroll(code, f"{rep['name']} laptop", os.urandom(32), os.urandom(32))
    finally:
        archive.close()


def timed_post(client: httpx.Client, path: str, form: dict[str, str],
               rounds: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        page = client.get(path.rsplit("/", 1)[0]).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        t0 = time.perf_counter()
        answer = client.post(path, data={**form, "csrf_token": token.group(1)})
        times.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return sorted(times)[len(times) // 2], max(times)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/console-bench")
    data = root / "srv"
    if not (data / "archive.db").exists():
        build(data)
    add_oversight(data)
    # No replica: the first snapshot of a 0.5 GB archive would hold up the sign-in writes.
    server = ServerProcess(data, replica="none").start()
    try:
        for who, paths in (("root", ["/console/fleet", "/console/admin/health",
                                     "/console/admin/audit", "/console/admin/audit?action=rep.",
                                     "/console/admin/policies", "/console/admin/review",
                                     "/console/admin/staff", "/console/admin/enroll"]),
                           ("hana", ["/console/hr/people", "/console/hr/departures",
                                     "/console/hr/tokens"]),
                           ("mgr1", ["/console/fleet"])):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                sign_in(client, who)
                for path in paths:
                    median, worst, _ = timed(client, path)
                    print(f"{who:5} {path:42} median {median:6.1f} ms  worst {worst:6.1f} ms")
                if who == "root":
                    median, worst = timed_post(client, "/console/admin/policies/preview",
                                               {"return_days_c": "30", "warn_days": "10"})
                    print(f"{who:5} {'POST /console/admin/policies/preview':42} median "
                          f"{median:6.1f} ms  worst {worst:6.1f} ms")
                if who == "hana":
                    median, worst = timed_post(client, "/console/hr/departures/preview",
                                               {"rep": "Rep 1-07", "mode": "team",
                                                "reason": "bench"})
                    print(f"{who:5} {'POST /console/hr/departures/preview':42} median "
                          f"{median:6.1f} ms  worst {worst:6.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
