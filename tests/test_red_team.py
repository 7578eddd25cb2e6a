"""Attacks re-tried against the merged hardening of issue 8, and what they found.

Each test is one way in that was still open after the first round of fixes: it
failed before its fix (see the commit that added it)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agent import keystore
from agent.enroll import enroll
from agent.home import KEYRING_FILE
from schema import sealing
from schema.clock import ManualClock
from schema.models import CustomerCreate
from server import hr_inbox
from server.rules import Archive, init_archive

from . import harness
from .harness import AGENT, SignedDevice, ThreadedServer, run


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadedServer]:
    server = ThreadedServer(tmp_path / "server").start()
    yield server
    server.stop()


# --- the final flush ---------------------------------------------------------------


def test_an_envelope_with_loose_types_is_refused_like_a_push(
        served: ThreadedServer, tmp_path: Path) -> None:
    """The operation inside an envelope is wire data like a push's: strict types. A
    revoked device (or a copy of it) sealing `"seq": "5"`, `"base_rev": false` or
    `"at": 0` must not get it quarantined as a 1970 edit."""
    arch = served.archive
    rep = arch.add_rep("Lo Leaver")["id"]
    customer = arch.add_customer(CustomerCreate(name="Loose Ltd"), rep)["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "home"
    config = enroll(home, served.url, code)
    arch.revoke(rep, "left", "pool")
    box_pub = served.app.state.box_key.public_key().public_bytes_raw()
    good: dict[str, Any] = {"op_id": "op" + "0" * 30, "seq": 1, "kind": "customer.update",
            "entity_id": customer, "base_rev": 1, "at": "2026-12-01T10:00:00.000000Z",
            "data": {"notes": "typed offline"}}
    loose: dict[str, dict[str, Any]] = {
        "seq as text": {"seq": "5"},
        "base_rev as false": {"base_rev": False},
        "at as a number": {"at": 0},
        "notes as a number": {"data": {"notes": 5}},
    }

    def envelope(op: dict[str, Any]) -> dict[str, Any]:
        aad = sealing.envelope_aad(config.device_id, op["op_id"])
        sealed = sealing.seal(box_pub, {"device_id": config.device_id, "op": op}, aad)
        return {"op_id": op["op_id"], "sealed": sealed}

    ops = [{**good, **change, "op_id": f"loose{n:027d}"} for n, change in enumerate(loose.values())]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        dev = SignedDevice(client, config.device_id, rep, keystore.load_sign_key(home))
        resp = dev.send("POST", "/v1/final-flush",
                        orjson.dumps({"envelopes": [envelope(op) for op in [*ops, good]]}))
    assert resp.status_code == 200, resp.text
    statuses = [r["status"] for r in resp.json()["results"]]
    assert dict(zip([*loose, "strict"], statuses, strict=True)) == {
        **dict.fromkeys(loose, "rejected"), "strict": "quarantined"}
    assert [q["op_id"] for q in arch.quarantine()] == [good["op_id"]]


# --- the HR inbox --------------------------------------------------------------------


@pytest.fixture
def arch(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "server", ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def _drop(inbox: Path, name: str, content: str) -> None:
    tmp = inbox / ".drop.part"
    tmp.write_text(content)
    os.replace(tmp, inbox / name)


def _reps(arch: Archive, *names: str) -> list[str]:
    return [arch.add_rep(name)["id"] for name in names]


def test_a_file_with_a_name_too_long_for_its_note_is_filed_once(
        arch: Archive, inbox: Path) -> None:
    """A 250-byte name left no room for `.NAME.reason.txt.tmp` (255 bytes at most):
    filing raised ENAMETOOLONG, a traceback was logged and the file stayed in the inbox,
    applied and logged again on every later event."""
    [rep] = _reps(arch, "Rep Long")
    name = "x" * 250 + ".csv"
    _drop(inbox, name, "rep\nRep Long\n")
    watcher = hr_inbox.InboxWatcher(arch, inbox)
    [result] = watcher.drain()
    assert result["status"] == "processed", result
    assert [d["rep_id"] for d in result["departures"]] == [rep]
    filed = Path(result["filed_as"])
    assert filed.parent == arch.data_dir / "hr-inbox" / "processed"
    assert filed.read_text() == "rep\nRep Long\n" and filed.name.endswith(".csv")
    assert json.loads(filed.with_name(filed.name + ".result.json").read_bytes())["file"] == name
    assert os.listdir(inbox) == [] and watcher.drain() == []
    # A bad file under such a name is rejected once, too; so are its re-sent copies.
    for _ in range(2):
        _drop(inbox, name, "no rep column\nx\n")
        [result] = watcher.drain()
        assert result["status"] == "rejected" and os.listdir(inbox) == []
    rejected = sorted(os.listdir(arch.data_dir / "hr-inbox" / "rejected"))
    assert len(rejected) == 4 and len({n.removesuffix(".reason.txt") for n in rejected}) == 2


class _HrResendsDuringApply:
    """The archive, but HR drops a newer file under the same name while the first one is
    being applied (after the server's last check that the name is still its file)."""

    def __init__(self, arch: Archive, resend: Any) -> None:
        self._arch = arch
        self._resend = resend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._arch, name)

    def revoke_many(self, *args: Any, **kwargs: Any) -> Any:
        self._resend()
        self._resend = lambda: None
        return self._arch.revoke_many(*args, **kwargs)


def test_a_file_replaced_after_the_recheck_is_not_filed_in_place_of_the_one_read(
        arch: Archive, inbox: Path) -> None:
    """The filed copy is the file that was read and applied; a newer file renamed over the
    same name meanwhile stays in the inbox for its own round. Before, the newer file was
    moved to processed/ under the first one's result and its departures never applied."""
    rep_a, rep_b = _reps(arch, "Rep A", "Rep B")
    _drop(inbox, "leavers.csv", "rep\nRep A\n")
    proxy = _HrResendsDuringApply(arch, lambda: _drop(inbox, "leavers.csv", "rep\nRep B\n"))
    first = hr_inbox.process_file(proxy, inbox / "leavers.csv")  # type: ignore[arg-type]
    assert [d["rep_id"] for d in first["departures"]] == [rep_a]
    assert Path(first["filed_as"]).read_text() == "rep\nRep A\n"
    assert [p.read_text() for p in inbox.iterdir()] == ["rep\nRep B\n"]
    [second] = hr_inbox.InboxWatcher(arch, inbox).drain()
    assert [d["rep_id"] for d in second["departures"]] == [rep_b]
    assert Path(second["filed_as"]).read_text() == "rep\nRep B\n"
    assert os.listdir(inbox) == []


def test_a_symlink_replaced_by_a_real_file_after_the_check_is_not_filed_unread(
        arch: Archive, inbox: Path, tmp_path: Path) -> None:
    """A symlink is rejected unread; if HR (or anyone) puts a real file under that name
    before it is filed, the real file is not swept into rejected/ with the symlink's
    reason: it stays for its own round."""
    [rep] = _reps(arch, "Rep S")
    (tmp_path / "elsewhere.csv").write_text("rep\nRep S\n")
    os.symlink(tmp_path / "elsewhere.csv", inbox / "leavers.csv")
    real_write_note = hr_inbox._write_note

    def replace_then_note(*args: Any) -> None:  # after every check, before the move
        _drop(inbox, "leavers.csv", "rep\nRep S\n")
        real_write_note(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hr_inbox, "_write_note", replace_then_note)
        first = hr_inbox.process_file(arch, inbox / "leavers.csv")
    assert first["status"] == "rejected" and "symbolic link" in first["reason"]
    assert [p.read_text() for p in inbox.iterdir()] == ["rep\nRep S\n"]
    [second] = hr_inbox.InboxWatcher(arch, inbox).drain()
    assert [d["rep_id"] for d in second["departures"]] == [rep]


def test_a_name_that_is_not_utf8_is_applied_and_filed_once(arch: Archive,
                                                           inbox: Path) -> None:
    """Its JSON note could not be written (surrogate escapes are not UTF-8): the file
    stayed in the inbox, applied and logged with a traceback on every later event."""
    [rep] = _reps(arch, "Rep Latin")
    raw_name = b"d\xe9parts.csv"  # Latin-1 from an old HR export
    with open(os.path.join(os.fsencode(inbox), raw_name), "wb") as fh:
        fh.write(b"rep\nRep Latin\n")
    watcher = hr_inbox.InboxWatcher(arch, inbox)
    [result] = watcher.drain()
    assert result["status"] == "processed" and result["file"] == "d\ufffdparts.csv"
    assert [d["rep_id"] for d in result["departures"]] == [rep]
    assert os.listdir(inbox) == [] and watcher.drain() == []


# --- keyring.json edited or damaged ----------------------------------------------------


def _set(path: tuple[str, ...], value: Any) -> Any:
    def edit(ring: Any) -> Any:
        node = ring
        for key in path[:-1]:
            node = node[key]
        if value is _GONE:
            node.pop(path[-1])
        else:
            node[path[-1]] = value
        return ring
    return edit


_GONE = object()
KEYRING_EDITS: dict[str, Any] = {
    # Edits that would give more time or skip a check: refused, nothing read.
    "block_at moved out": _set(("lease", "block_at"), "2099-01-01T00:00:00.000000Z"),
    "wipe_at moved out": _set(("lease", "wipe_at"), "2099-01-01T00:00:00.000000Z"),
    "issued_at moved": _set(("lease", "issued_at"), "2099-01-01T00:00:00.000000Z"),
    "lease of another device": _set(("lease", "device_id"), "dev_someone_else"),
    "secret removed": _set(("secret",), _GONE),
    "secret replaced": _set(("secret",), "A" * 43 + "="),
    "wrapped epoch changed": _set(("wrapped", "epoch"), 99),
    # Damage: one `error:` line saying what to do, not a traceback.
    "signature removed": _set(("signature",), _GONE),
    "signature null": _set(("signature",), None),
    "lease a list": _set(("lease",), []),
    "lease removed": _set(("lease",), _GONE),
    "wrapped removed": _set(("wrapped",), _GONE),
    "last_server_time garbage": _set(("last_server_time",), "garbage"),
    "block_at garbage, no secret": lambda ring: _set(("lease", "block_at"), "x")(
        _set(("secret",), _GONE)(ring)),
    "not JSON": lambda ring: b"{not json",
    "empty": lambda ring: b"",
    "a list": lambda ring: [],
}


def test_an_edited_or_damaged_keyring_opens_nothing_and_says_so_in_one_line(
        served: ThreadedServer, tmp_path: Path) -> None:
    """No edit of keyring.json gives more access; a damaged one is a one-line error
    (before: KeyError, AttributeError, ValueError or JSONDecodeError tracebacks from
    every command, `fieldvault status` included)."""
    arch = served.archive
    rep = arch.add_rep("Kay Ring")["id"]
    arch.add_customer(CustomerCreate(name="Ring Secret Ltd"), rep)
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "home"
    enroll(home, served.url, code)
    first = run([AGENT, "sync", "--home", str(home)])
    assert first.returncode == 0, first.stderr
    assert "Ring Secret" in run([AGENT, "customer", "list", "--home", str(home), "--json"]).stdout
    original = orjson.loads((home / KEYRING_FILE).read_bytes())
    for name, edit in KEYRING_EDITS.items():
        copy = tmp_path / "copies" / name.replace(" ", "_").replace(",", "")
        shutil.copytree(home, copy)
        edited = edit(orjson.loads(orjson.dumps(original)))
        (copy / KEYRING_FILE).write_bytes(
            edited if isinstance(edited, bytes) else orjson.dumps(edited))
        for command in (["customer", "list", "--json"], ["status"]):
            proc = run([AGENT, *command, "--home", str(copy)], check=False)
            if command[0] == "status" and proc.returncode == 0:
                assert "Ring Secret" not in proc.stdout and "active" not in proc.stdout, name
                continue
            assert proc.returncode == 1, (name, command, proc.stdout, proc.stderr)
            assert "Ring Secret" not in proc.stdout, name
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, command, proc.stderr)


# --- times at the edge of the calendar -------------------------------------------------

EDGE_TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_an_effective_time_beyond_the_calendar_is_a_400_not_a_500(
        served: ThreadedServer, when: str) -> None:
    """A valid ISO time whose UTC form falls outside years 1-9999 raised OverflowError:
    a plain-text 500 from the HR API."""
    arch = served.archive
    rep = arch.add_rep("Edge Leaver")["id"]
    token = arch.create_hr_token("hr-system")
    resp = httpx.post(served.url + "/v1/hr/departures", timeout=30,
                      headers={"Authorization": f"Bearer {token}"},
                      json={"rep": rep, "reason": "left", "effective_at": when})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_time"
    assert arch.resolve_rep(rep)["active"]


def test_an_inbox_file_with_a_time_beyond_the_calendar_is_rejected_once(
        arch: Archive, inbox: Path) -> None:
    """The same OverflowError escaped the HR inbox: a traceback on every event and the
    file left in the inbox for ever."""
    _reps(arch, "Rep Edge")
    _drop(inbox, "edge.csv", f"rep,effective_at\nRep Edge,{EDGE_TIMES[0]}\n")
    watcher = hr_inbox.InboxWatcher(arch, inbox)
    [result] = watcher.drain()
    assert result["status"] == "rejected" and "not an ISO time" in result["reason"]
    assert os.listdir(inbox) == [] and watcher.drain() == []


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_a_pushed_time_beyond_the_calendar_is_a_422_not_a_500(
        served: ThreadedServer, tmp_path: Path, when: str) -> None:
    """A signed push whose visit started at 9999-12-31T23:59:59-14:00 got a plain-text
    500 (OverflowError storing it as UTC); an op's `at` was taken as it came."""
    arch = served.archive
    rep = arch.add_rep("Edge Rep")["id"]
    customer = arch.add_customer(CustomerCreate(name="Edge Ltd"), rep)["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "home"
    config = enroll(home, served.url, code)
    harness.lib_sync(home)
    visit = {"op_id": "v" * 32, "seq": 1, "kind": "visit.create", "entity_id": "e" * 32,
             "at": "2026-12-01T10:00:00Z",
             "data": {"customer_id": customer, "started_at": when, "purpose": "service",
                      "summary": "s"}}
    update = {"op_id": "u" * 32, "seq": 2, "kind": "customer.update", "entity_id": customer,
              "base_rev": 1, "at": when, "data": {"notes": "n"}}
    with httpx.Client(base_url=served.url, timeout=30) as client:
        dev = SignedDevice(client, config.device_id, rep, keystore.load_sign_key(home))
        for op, where in ((visit, "ops.0.visit.create.data.started_at"),
                          (update, "ops.0.customer.update.at")):
            resp = dev.push([op])
            assert resp.status_code == 422, resp.text
            assert resp.json()["message"].startswith(where), resp.text
    assert arch.list_visits(rep) == []
    # The agent refuses it too, in one line.
    proc = run([AGENT, "visit", "log", "--home", str(home), "--customer", customer,
                "--purpose", "service", "--summary", "s", "--started-at", when], check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: started_at: Value error, is out of range once converted to UTC"], proc.stderr


# --- enrollment ------------------------------------------------------------------------


def test_an_unusable_box_key_is_refused_before_the_code_is_spent(served: ThreadedServer) -> None:
    """An all-zero (low-order) X25519 key: sealing the first lease to it fails. The code
    was spent and a device row written first, then a plain-text 500; enrolling again with
    good keys then failed as well (`key_in_use` for the zero key, the code used)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    arch = served.archive
    rep = arch.add_rep("Zero Key")["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))

    def b64(key: Any) -> str:
        return base64.b64encode(key.public_key().public_bytes_raw()).decode()

    def attempt(box: str) -> httpx.Response:
        return httpx.post(served.url + "/v1/enroll", timeout=30, json={
            "code": code, "sign_public_key": b64(Ed25519PrivateKey.generate()),
            "box_public_key": box})

    for bad in (base64.b64encode(bytes(32)).decode(),
                base64.b64encode(b"\x01" + bytes(31)).decode()):  # both of low order
        resp = attempt(bad)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"] == "invalid_key"
    assert arch.list_devices(rep) == []
    resp = attempt(b64(X25519PrivateKey.generate()))
    assert resp.status_code == 200, resp.text


def test_an_inbox_replaced_by_a_symlink_is_not_read(arch: Archive, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can write in the inbox's parent folder can swap the inbox for a symlink.
    The server then listed the target folder and moved its *.csv / *.json files into its
    own (here: a root-only settings file, taken out of /etc in real life). The inbox is
    resolved once when the watcher starts (an admin's symlink is fine) and never followed
    after that."""
    _reps(arch, "Rep V")
    hr_area = tmp_path / "hr-area"  # writable by the HR system
    (hr_area / "real-inbox").mkdir(parents=True)
    admin_link = tmp_path / "inbox-link"  # an admin may configure the inbox through a link
    admin_link.symlink_to(hr_area / "real-inbox")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "settings.json").write_text('{"departures": [{"rep": "Rep V"}]}')
    watcher = hr_inbox.InboxWatcher(arch, admin_link)
    _drop(hr_area / "real-inbox", "first.csv", "rep\nNobody\n")
    watcher.start()
    try:
        assert os.listdir(hr_area / "real-inbox") == []  # read through the admin's link
        (hr_area / "real-inbox").rename(hr_area / "old-inbox")
        (hr_area / "real-inbox").symlink_to(victim)
        assert watcher.drain() == []
    finally:
        watcher.stop()
    assert os.listdir(victim) == ["settings.json"] and arch.resolve_rep("Rep V")["active"]
    assert "is not a folder" in caplog.text


def test_a_damaged_config_is_one_error_line(served: ThreadedServer, tmp_path: Path) -> None:
    """config.json edited or damaged gave a TypeError/JSONDecodeError traceback."""
    arch = served.archive
    rep = arch.add_rep("Con Fig")["id"]
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    home = tmp_path / "home"
    enroll(home, served.url, code)
    for n, damage in enumerate([b"{}", b"[]", b"not json", b'{"server_url": 1}', b""]):
        copy = tmp_path / f"copy{n}"
        shutil.copytree(home, copy)
        (copy / "config.json").write_bytes(damage)
        for command in (["status"], ["customer", "list"], ["sync"]):
            proc = run([AGENT, *command, "--home", str(copy)], check=False)
            assert proc.returncode == 1, (damage, command, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and "config.json is damaged" in lines[0], (damage, proc.stderr)


# --- bodies of strangers -------------------------------------------------------------


def _answer_before_the_body(url: str, path: str, headers: dict[str, str]) -> bytes:
    """Send the headers of an 8 MiB body and only its first bytes; what the server
    answers within 10 s (b"" if it waits for the rest)."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {8 * 1024 * 1024 - 1}\r\n{lines}\r\n".encode() + b'{"ops":[')
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


def test_a_stranger_is_refused_before_the_server_holds_its_body(served: ThreadedServer) -> None:
    """Each signed route read the whole body (up to 8 MiB) before looking at who sent it,
    since the signature covers the body: a stranger with no device could hold 8 MiB of
    server memory per connection by sending all but the last byte and waiting, hundreds
    of connections at once. The headers are checked first now (well-formed, a known
    device, a fresh time); only then is the body read and the signature verified."""
    now = str(int(time.time()))
    strangers = {
        "no headers": {},
        "unknown device": {"FV-Device": "dev_nobody", "FV-Timestamp": now,
                           "FV-Nonce": "n" * 20, "FV-Signature": "x"},
        "stale time": {"FV-Device": "dev_nobody", "FV-Timestamp": "1000",
                       "FV-Nonce": "n" * 20, "FV-Signature": "x"},
    }
    for path in ("/v1/push", "/v1/final-flush", "/v1/reconcile"):
        for name, headers in strangers.items():
            answer = _answer_before_the_body(served.url, path, headers)
            assert answer.startswith(b"HTTP/1.1 401"), (path, name, answer[:200])
