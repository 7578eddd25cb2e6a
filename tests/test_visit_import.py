"""`fieldvault visit import FILE.csv` (issue 10): a spreadsheet's visits become normal
offline visits in the outbox, all rows or none; a bad row names its line and field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .harness import (
    AGENT,
    ServerProcess,
    add_customers,
    add_rep,
    agent_cli,
    archive,
    enroll,
    init_server,
    run,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, list[dict]]]:
    root = tmp_path_factory.mktemp("import")
    data = root / "server"
    init_server(data)
    rep = add_rep(data, "Spreadsheet Rep")
    cards = add_customers(data, rep, ["上海华联有限公司", "Golden Bridge Trading"])
    server = ServerProcess(data).start()
    home = root / "agent"
    enroll(data, home, server.url, rep)  # ends with the first sync: the cards are here
    try:
        yield data, home, cards
    finally:
        server.stop()


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def soon(minutes: int) -> str:
    """A local time without a zone, as a spreadsheet holds it: just after the cards were
    made (a visit may not start before its card existed)."""
    return (datetime.now() + timedelta(seconds=30, minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def visit_ids(home: Path) -> set[str]:
    return {v["id"] for v in agent_cli(home, "visit", "list")}


def test_bad_rows_import_nothing_and_name_the_line_and_field(setup: tuple, tmp_path: Path) -> None:
    _, home, cards = setup
    before = visit_ids(home)
    card = cards[0]["card_no"]
    header = "customer,started_at,purpose,summary\n"
    cases = {
        "line 3, field purpose": f"{card},{soon(0)},service,ok\n{card},{soon(1)},party,ok\n",
        "line 2, field customer": f"NO-SUCH-CARD,{soon(0)},service,ok\n",
        "line 2, field started_at": f"{card},not a time,service,ok\n",
        "line 4, field summary": (f"{card},{soon(0)},service,ok\n{card},{soon(1)},order,ok\n"
                                  f"{card},{soon(2)},order,\n"),
        "line 2, field started_at: the visit starts in the future":
            f"{card},{soon(60 * 24)},service,ok\n",
    }
    for expected, rows in cases.items():
        path = write_csv(tmp_path / "bad.csv", header + rows)
        proc = run([AGENT, "visit", "import", str(path), "--home", str(home)], check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith(f"error: {expected}"), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    unknown = write_csv(tmp_path / "cols.csv", "customer,started_at,purpose,summary,mood\n")
    proc = run([AGENT, "visit", "import", str(unknown), "--home", str(home)], check=False)
    assert proc.returncode == 1 and "line 1: unknown column(s) 'mood'" in proc.stderr
    assert visit_ids(home) == before  # nothing of any of them was saved
    assert agent_cli(home, "status")["outbox"]["pending"] == 0


def test_every_row_becomes_an_offline_visit_that_syncs(setup: tuple, tmp_path: Path) -> None:
    data, home, cards = setup
    zoned = (datetime.now().astimezone() + timedelta(minutes=3)).isoformat(timespec="seconds")
    path = write_csv(tmp_path / "visits.csv", (
        "\ufeffcustomer,started_at,ended_at,purpose,summary,outcome,planned\n"  # Excel's BOM
        f"{cards[0]['card_no']},{soon(0)},{soon(40)},service,\"修好两台设备, 客户满意\",满意,true\n"
        f"{cards[1]['id']},{zoned},,order,\"Q3 order,\nthree deliveries\",,\n"
    ))
    assert agent_cli(home, "visit", "import", str(path)) == {"imported": 2}
    assert agent_cli(home, "status")["outbox"]["pending"] == 2
    mine = {v["summary"]: v for v in agent_cli(home, "visit", "list") if v["rev"] == 0}
    first = mine["修好两台设备, 客户满意"]
    assert first["customer_id"] == cards[0]["id"] and first["planned"] in (1, True)
    assert first["outcome"] == "满意" and first["status"] == "submitted"
    assert mine["Q3 order,\nthree deliveries"]["customer_id"] == cards[1]["id"]
    # A naive spreadsheet time is the laptop's local time, stored in UTC.
    local = datetime.strptime(soon(0)[:16], "%Y-%m-%d %H:%M").astimezone()
    assert abs(datetime.fromisoformat(first["started_at"].replace("Z", "+00:00")) - local) < \
        timedelta(minutes=2)
    out = agent_cli(home, "sync")
    assert out["pushed"] == 2 and out["results"] == {"accepted": 2}
    for visit in mine.values():  # in the archive, as sent
        assert archive(data).get_visit(visit["id"])["summary"] == visit["summary"]
    text = run([AGENT, "visit", "import", str(path), "--home", str(home)]).stdout
    assert text.startswith("imported 2 visits")
