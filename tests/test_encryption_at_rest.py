"""Encryption at rest: no plaintext of customer names or visit notes in the agent's files.

Customers with known, distinctive names (Chinese and English) are synced down,
visits with known notes are logged, a card is created on the laptop, and then
a writer process is SIGKILLed in the middle of a stream of writes, leaving a
hot WAL behind. Every file in the agent home, and in the TMPDIR its processes
used, is scanned for the UTF-8 bytes of those names and notes. The server's
plaintext archive is scanned the same way as a control, so the scan is known to
find what is there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.home import CONFIG_FILE, VAULT_FILE
from schema.models import CustomerCreate, CustomerPatch, VisitCreate

from . import harness
from .harness import ServerProcess, agent_cli

pytestmark = pytest.mark.slow

SERVER_NAMES = ["翡翠湾精密仪器有限公司", "Quillfeather Pangolin Biolabs"]
AGENT_NAME = "琥珀山庄 Zanzibar Orchard Cooperative"
CLI_NOTE = "客户说竞争对手报价低了百分之十二 Wolverhampton tender"
CLI_OUTCOME = "签下了三年框架协议 Marmalade clause agreed"
LIB_NOTE = "Spoke with the night-shift foreman about the Xylophone compressor"
CARD_NOTE = "采购经理姓欧阳，只在周四下午接电话"
WRITER_NOTE = "Writer-in-flight note about the Kumquat escalator contract"
SECRETS = [*SERVER_NAMES, AGENT_NAME, CLI_NOTE, CLI_OUTCOME, LIB_NOTE, CARD_NOTE, WRITER_NOTE]
# Distinctive words too, in case a record were stored split or re-encoded around them.
WORDS = ["翡翠湾", "Quillfeather", "Zanzibar", "Wolverhampton", "Marmalade", "Xylophone",
         "欧阳", "Kumquat"]
NEEDLES = [s.encode() for s in SECRETS + WORDS]

WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from agent.store import Store
from schema.models import VisitCreate
home, rep_id, customer = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
store = Store.open(home, rep_id)
for i in range(100000):
    store.log_visit(VisitCreate(customer_id=customer, purpose="service",
                                summary=sys.argv[4] + f" #{i}", started_at=datetime.now(UTC)))
    print(i + 1, flush=True)
"""


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def leaks(paths: list[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        blob = path.read_bytes()
        hits = [n.decode() for n in NEEDLES if n in blob]
        if hits:
            found[str(path)] = hits
    return found


def kill_writer_mid_stream(home: Path, rep_id: str, customer: str, env: dict[str, str]) -> int:
    """Start a process that logs visits as fast as it can; SIGKILL it mid-stream.
    Returns how many writes it had reported committed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), rep_id, customer, WRITER_NOTE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    committed = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while committed < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
        if committed < 40:
            raise AssertionError(f"writer did not get going: {proc.communicate(timeout=10)[1]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        for line in proc.stdout.read().split():
            committed = int(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return committed


def test_agent_files_hold_no_plaintext(
    data_dir: Path, server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))  # any temp file a CLI or SQLite makes lands here
    rep = harness.archive(data_dir).add_rep("Ma Lin")["id"]
    customers = harness.add_customers(data_dir, rep, SERVER_NAMES)
    home = tmp_path / "agent"
    harness.lib_enroll(data_dir, home, server.url, rep)

    assert agent_cli(home, "sync")["pulled_customers"] == 2
    agent_cli(home, "visit", "log", "--customer", customers[0]["card_no"], "--purpose", "order",
              "--summary", CLI_NOTE, "--outcome", CLI_OUTCOME)
    with harness.open_store(home) as store:
        created = store.add_customer(CustomerCreate(name=AGENT_NAME, needs="irrigation pumps"))
        store.edit_customer(customers[1]["id"], CustomerPatch(notes=CARD_NOTE))
        store.log_visit(VisitCreate.model_validate({
            "customer_id": customers[1]["id"], "purpose": "service", "summary": LIB_NOTE,
            # now, in China Standard Time: not before the card existed
            "started_at": datetime.now(timezone(timedelta(hours=8))).isoformat()}))
    assert agent_cli(home, "sync")["results"] == {"accepted": 4}

    committed = kill_writer_mid_stream(home, rep, created["id"], dict(os.environ))
    files = files_under(home, tmpdir)
    names = {p.name for p in files}
    # The kill left the vault mid-stream: its write-ahead log is there, with data in it.
    assert VAULT_FILE + "-wal" in names, names
    assert (home / (VAULT_FILE + "-wal")).stat().st_size > 0
    assert leaks(files) == {}

    # Control: the same scan finds the plaintext in the server's (unencrypted) archive.
    # Only the archive's own files: Litestream renames its temporary files meanwhile.
    archive_hits = leaks([p for p in data_dir.iterdir() if p.name.startswith("archive.db")])
    assert any(SERVER_NAMES[0] in hits for hits in archive_hits.values()), archive_hits

    # Plain sqlite3 cannot read the vault, nor even recognise it as a database.
    vault = home / VAULT_FILE
    assert not vault.read_bytes()[:16].startswith(b"SQLite format 3")
    with closing(sqlite3.connect(f"file:{vault}?mode=ro", uri=True)) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    # Everything is really in the vault (the scan above was not of empty files), and
    # every write the killed process reported as committed survived the SIGKILL.
    with harness.open_store(home) as store:
        assert {c["name"] for c in store.iter_customers()} == {*SERVER_NAMES, AGENT_NAME}
        assert [v["summary"] for v in store.iter_visits(search="Wolverhampton")] == [CLI_NOTE]
        assert store.get_customer(customers[1]["id"])["notes"] == CARD_NOTE
        assert len(list(store.iter_visits(search="Kumquat escalator"))) >= committed

    # Key material, config and the vault itself are owner-only, in an owner-only home.
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    private = [p for p in home.iterdir() if p.is_file()]
    assert {CONFIG_FILE, "device_sign.pem", "device_box.pem", VAULT_FILE} <= {
        p.name for p in private}
    assert len(private) >= 5, "expected a vault key file besides config, device keys and vault"
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in private}
    assert set(modes.values()) == {oct(0o600)}, modes
