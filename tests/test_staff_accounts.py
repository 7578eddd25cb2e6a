"""Staff accounts end to end: the `user` commands, the staff API's account routes and
the HR API taking staff tokens, on a real server and the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.clock import ManualClock
from server.rules.opening import open_archive

from .harness import (
    SERVER,
    ServerProcess,
    archive,
    archive_env,
    assert_json_error,
    init_server,
    run,
    server_cli,
)

PASSWORD = "correct horse battery staple"


@dataclass
class Site:
    data: Path
    url: str
    tmp: Path

    def api(self, method: str, path: str, token: str | None,
            body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.url + path, headers=headers, json=body, timeout=30)

    def refused(self, *args: str, stdin: str | None = None) -> str:
        """A `fieldvault-server` run that must fail: its one stderr line."""
        proc = run([SERVER, *args, "--data", str(self.data)], check=False, input=stdin,
                   env=archive_env(self.data))
        assert proc.returncode != 0 and proc.stdout == "", proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        return lines[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("staff")
    data = tmp / "server"
    init_server(data)
    server = ServerProcess(data).start()
    yield Site(data, server.url, tmp)
    server.stop()


def test_user_commands(site: Site) -> None:
    secret = site.tmp / "root.pw"
    secret.write_text(PASSWORD + "\n")
    server_cli(site.data, "rep", "add", "--name", "Boss")
    root = server_cli(site.data, "user", "add", "--name", "root", "--role", "admin",
                      "--password-file", str(secret))
    assert root["role"] == "admin" and root["has_password"] and "password_hash" not in root
    server_cli(site.data, "user", "add", "--name", "mgr", "--role", "manager", "--rep", "Boss")
    assert "--rep" in site.refused("user", "add", "--name", "m2", "--role", "manager")
    assert "10 to 1024" in site.refused("user", "add", "--name", "weak", "--role", "hr",
                                        "--password-file", "-", stdin="short\n")
    assert "cannot read --password-file" in site.refused(
        "user", "add", "--name", "x", "--role", "hr", "--password-file", str(site.tmp / "none"))
    # As a staff user (--by), the role decides: a manager may not manage accounts.
    assert "may not do staff.manage" in site.refused("user", "list", "--by", "mgr")
    issued = server_cli(site.data, "user", "token", "root", "--name", "erp", "--by", "root")
    assert issued["token"].startswith("fvst_") and issued["name"] == "erp"
    listed = {u["name"]: u for u in server_cli(site.data, "user", "list")}
    assert listed["root"]["tokens"] == 1 and listed["mgr"]["has_password"] is False
    me = site.api("GET", "/v1/staff/me", issued["token"])
    assert me.status_code == 200 and me.json()["name"] == "root"
    tokens = server_cli(site.data, "user", "tokens", "root")
    assert [t["name"] for t in tokens] == ["erp"] and tokens[0]["last_used_at"] is not None
    assert server_cli(site.data, "user", "revoke-token", "root", "--name", "erp")["revoked"] == 1
    assert_json_error(site.api("GET", "/v1/staff/me", issued["token"]), 401, "unauthorized")
    assert "no live token named 'erp'" in site.refused("user", "revoke-token", "root",
                                                       "--name", "erp")
    assert "last active admin" in site.refused("user", "disable", "root")
    # A new password from stdin unlocks and replaces the old one; never on argv.
    arch = archive(site.data)
    assert arch.verify_password("root", PASSWORD).name == "root"
    proc = run([SERVER, "user", "password", "root", "--password-file", "-", "--data",
                str(site.data), "--json"], input="another long passphrase\n",
               env=archive_env(site.data))
    assert proc.returncode == 0 and "another long" not in proc.stdout
    assert arch.verify_password("root", "another long passphrase").name == "root"
    assert server_cli(site.data, "user", "disable", "mgr")["disabled_at"] is not None
    assert "no staff user 'nobody'" in site.refused("user", "disable", "nobody")
    actions = [e["action"] for e in arch.audit_entries() if e["action"].startswith("staff.")]
    assert actions == ["staff.add", "staff.add", "staff.token", "staff.token_revoke",
                       "staff.password", "staff.disable"]


def test_account_routes(site: Site) -> None:
    arch = archive(site.data)
    arch.add_staff("boss", "admin")
    admin = arch.create_staff_token("boss", "console")
    made = site.api("POST", "/v1/staff/users", admin,
                    {"name": "vera", "role": "verifier", "password": PASSWORD})
    assert made.status_code == 201, made.text
    assert made.json()["has_password"] is True and "password" not in made.json()
    assert_json_error(site.api("POST", "/v1/staff/users", admin, {"name": "vera", "role": "hr"}),
                      409, "duplicate_user")
    assert_json_error(site.api("POST", "/v1/staff/users", admin,
                               {"name": "z", "role": "hr", "password": "short"}),
                      422, "invalid_request")
    assert_json_error(site.api("POST", "/v1/staff/users", admin, {"name": "z", "role": "boss"}),
                      422, "invalid_request")
    token = site.api("POST", "/v1/staff/users/vera/tokens", admin, {"name": "bi"}).json()["token"]
    assert site.api("GET", "/v1/staff/me", token).json() == {
        "id": made.json()["id"], "name": "vera", "role": "verifier", "rep_id": None,
        "actions": ["callback.figures", "callback.work", "policy.read", "self.read",
                    "visit.read"]}
    listed = site.api("GET", "/v1/staff/users/vera/tokens", admin).json()
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("bi", None)]
    assert listed[0]["last_used_at"] is not None
    users = {u["name"]: u for u in site.api("GET", "/v1/staff/users", admin).json()}
    assert users["vera"]["tokens"] == 1 and "password_hash" not in users["vera"]
    changed = site.api("POST", "/v1/staff/users/vera/password", admin,
                       {"password": "a whole new phrase"})
    assert changed.status_code == 200 and arch.verify_password("vera", "a whole new phrase")
    revoked = site.api("DELETE", "/v1/staff/users/vera/tokens/bi", admin)
    assert revoked.json() == {"user": "vera", "name": "bi", "revoked": 1}
    assert_json_error(site.api("GET", "/v1/staff/me", token), 401, "unauthorized")
    assert_json_error(site.api("DELETE", "/v1/staff/users/vera/tokens/bi", admin), 404,
                      "unknown_token")
    disabled = site.api("POST", "/v1/staff/users/vera/disable", admin)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    entries = [e for e in arch.audit_entries() if e["actor"] == "staff:boss"]
    assert [e["action"] for e in entries] == ["staff.add", "staff.token", "staff.password",
                                              "staff.token_revoke", "staff.disable"]


def test_the_hr_api_takes_hr_and_admin_staff_tokens(site: Site) -> None:
    arch = archive(site.data)
    rep = arch.add_rep("Leaving Rep")["id"]
    arch.add_staff("people", "hr")
    arch.add_staff("vic", "verifier")
    hr = arch.create_staff_token("people", "hris")
    legacy = arch.create_hr_token("old-hris")
    for token in (hr, legacy):
        assert_json_error(site.api("GET", f"/v1/hr/departures/{rep}", token), 404, "not_revoked")
    assert_json_error(site.api("GET", f"/v1/hr/departures/{rep}", arch.create_staff_token("vic")),
                      403, "forbidden")
    assert_json_error(site.api("GET", f"/v1/hr/departures/{rep}", "fvst_nope"), 401)
    made = site.api("POST", "/v1/hr/departures", hr, {"rep": rep, "reason": "resigned"})
    assert made.status_code == 201 and made.json()["requested_by"] == "staff:people"


def test_expired_tokens_are_refused_by_the_real_server_and_listed_with_their_expiry(
        site: Site) -> None:
    """Tokens issued 91 days (staff) and 366 days (HR) ago, by the archive on a clock set
    back, are refused by the server on the real clock, saying what to do; younger ones
    of the same accounts work, and `user tokens` shows when each expires."""
    arch = archive(site.data)
    rep = arch.add_rep("Expiry Rep")["id"]
    arch.add_staff("old-bot", "hr")
    now = datetime.now(UTC)
    past = open_archive(site.data, clock=ManualClock(now - timedelta(days=91)))
    stale_staff = past.create_staff_token("old-bot", "q1")
    past.clock = ManualClock(now - timedelta(days=366))
    stale_hr = past.create_hr_token("last-year")
    past.close()
    path = f"/v1/hr/departures/{rep}"
    for token in (stale_staff, stale_hr):
        refused = assert_json_error(site.api("GET", path, token), 401, "unauthorized")
        assert "expired" in refused["message"] and "ask an admin" in refused["message"]
    assert_json_error(site.api("GET", "/v1/staff/me", stale_staff), 401, "unauthorized")
    fresh = arch.create_staff_token("old-bot", "q2")
    assert_json_error(site.api("GET", path, fresh), 404, "not_revoked")  # past the auth
    listed = {t["name"]: t for t in server_cli(site.data, "user", "tokens", "old-bot")}
    assert listed["q1"]["expires_at"] < now.isoformat() < listed["q2"]["expires_at"]
