"""The console's door, in a real browser against a real `fieldvault-server serve`:
sign-in and sign-out, the lockout message, sessions in HttpOnly SameSite=Strict
cookies, CSRF refusals, security headers, the language switch, every string
translated, and axe-clean pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from schema import catalogs
from schema.web import SECURITY_HEADERS
from server.rules.access import MATRIX

from .browser import assert_accessible, new_context, screenshot
from .harness import ServerProcess, add_rep, init_server, server_cli

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("console-auth") / "server"
    init_server(data)
    add_rep(data, "Boss")
    secret = data.parent / "password.txt"
    secret.write_text(PASSWORD + "\n")
    for name, role, *rep in (("mgr", "manager", "Boss"), ("vera", "verifier"),
                             ("locky", "verifier"), ("root", "admin"), ("hilda", "hr")):
        server_cli(data, "user", "add", "--name", name, "--role", role, *(["--rep", *rep] if rep else []),
                   "--password-file", str(secret))
    proc = ServerProcess(data).start()
    yield proc
    proc.stop()


def sign_in(page: Page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_every_console_string_is_translated() -> None:
    assert catalogs.untranslated(ROOT / "server" / "console") == []


def test_sign_in_out_lockout_csrf_and_language(server: ServerProcess, chromium: Browser) -> None:
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    # No session: any page sends you to sign in, and back after.
    page.goto(server.url + "/console/")
    assert "/console/sign-in" in page.url
    assert_accessible(page)
    screenshot(page, "console-sign-in")

    page.get_by_label("User name").fill("mgr")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Wrong user name or password")

    sign_in(page, server.url, "mgr")
    assert page.url.endswith("/console/")
    assert page.get_by_role("heading", level=1).inner_text() == "Home"
    menu = page.get_by_role("navigation", name="Main menu")
    assert menu.get_by_role("link", name="Home").count() == 1
    assert menu.get_by_role("link", name="Call-backs").count() == 0  # not a manager's
    assert_accessible(page)
    screenshot(page, "console-home-manager")
    cookie = next(c for c in ctx.cookies() if c["name"] == "fv_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"

    # Every response carries the security headers; a post without this session's
    # CSRF token is refused, with the session cookie and all.
    answer = page.request.get(server.url + "/console/")
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name.lower()] == value
    assert page.request.get(server.url + "/console/static/console.css").headers[
        "content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    refused = page.request.post(server.url + "/console/sign-out", form={"csrf_token": "forged"})
    assert refused.status == 403 and "did not come from the console" in refused.text()
    refused = page.request.post(server.url + "/console/sign-out")
    assert refused.status == 403

    # 简体中文, kept in a cookie; back to English.
    page.get_by_role("link", name="简体中文").click()
    assert page.get_by_role("heading", level=1).inner_text() == "首页"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert_accessible(page)
    screenshot(page, "console-home-zh")
    page.get_by_role("link", name="English").click()

    # Sign-out ends the session on the server: its cookie no longer opens a page.
    token = cookie["value"]
    page.get_by_role("button", name="Sign out").click()
    assert "/console/sign-in" in page.url
    stale = httpx.get(server.url + "/console/", cookies={"fv_console": token},
                      follow_redirects=False)
    assert stale.status_code == 303 and "/console/sign-in" in stale.headers["location"]

    # A sign-in form needs its CSRF token too (login CSRF).
    forged = httpx.post(server.url + "/console/sign-in",
                        data={"name": "mgr", "password": PASSWORD}, follow_redirects=False)
    assert forged.status_code == 403 and "fv_console=" not in forged.headers.get("set-cookie", "")

    # Lockout: five wrong passwords, then even the right one is refused, saying why.
    for _ in range(5):
        sign_in(page, server.url, "locky", "wrong password!")
    sign_in(page, server.url, "locky")
    alert = page.get_by_role("alert").inner_text()
    assert "locked after too many failed sign-ins" in alert and "until" in alert
    assert_accessible(page)
    screenshot(page, "console-sign-in-locked")
    assert guard.urls == []
    ctx.close()


# (method, path, action): the console's pages and forms this module guards. A forbidden
# role gets 403 for each; a post carries a valid CSRF token of the caller's own session
# (a forged form of a signed-in person of another role).
GUARDED = [
    ("GET", "/console/team", "report.read"), ("GET", "/console/approvals", "visit.review"),
    ("GET", "/console/plans", "plan.review"), ("GET", "/console/customers", "customer.read"),
    ("GET", "/console/distribute", "customer.distribute"),
    ("GET", "/console/reports/weekly", "report.read"), ("GET", "/console/disputes", "disputes.read"),
    ("GET", "/console/callbacks", "callback.work"),
    ("POST", "/console/approvals", "visit.review"), ("POST", "/console/plans/p1", "plan.review"),
    ("POST", "/console/customers/FV000001/lock", "customer.lock"),
    ("POST", "/console/customers/FV000001/assign", "customer.assign"),
    ("POST", "/console/distribute", "customer.distribute"),
    ("POST", "/console/reports/export", "report.export"),
    ("POST", "/console/callbacks/v1", "callback.work"),
]
FORM: dict[str, str | float | bool] = {
    "decision": "approve", "visit": "v1", "lock": "lock", "rep": "", "reason": "x",
    "confirm": "apply", "kind": "weekly", "subject": "mgr", "period": "2026-W01",
    "result": "verified", "note": "x"}


def test_the_authorization_matrix_through_the_browser(server: ServerProcess,
                                                      chromium: Browser) -> None:
    for name, role in (("mgr", "manager"), ("vera", "verifier"), ("hilda", "hr"), ("root", "admin")):
        ctx, guard = new_context(chromium)
        page = ctx.new_page()
        sign_in(page, server.url, name)
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert csrf
        for method, path, action in GUARDED:
            allowed = role in {r.value for r in MATRIX[action]}
            if method == "GET":
                answer = page.request.get(server.url + path)
                assert answer.status == (200 if allowed else 403), (name, path, answer.status)
            elif not allowed:
                answer = page.request.post(server.url + path, form={**FORM, "csrf_token": csrf})
                assert answer.status == 403, (name, path, answer.status)
                assert "may not" in answer.text()
            # Without the CSRF token, refused whoever asks.
            if method == "POST":
                answer = page.request.post(server.url + path, form=FORM)
                assert answer.status == 403, (name, path, "no csrf", answer.status)
        if role == "verifier":
            page.goto(server.url + "/console/approvals")
            assert page.get_by_role("alert").inner_text().startswith("Your role may not")
            assert_accessible(page)
            screenshot(page, "console-forbidden")
        assert guard.urls == []
        ctx.close()
