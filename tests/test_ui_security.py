"""Who may talk to the rep's local UI: only the browser that opened the launch URL
(one-time token -> HttpOnly SameSite=Strict session), naming us in the Host header,
posting with the session's CSRF token. Every answer carries the security headers.
A real `fieldvault ui` process over a real enrolled home; no browser needed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schema import catalogs, web
from server.rules import init_archive

from . import harness
from .uiproc import UIProcess


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIProcess]:
    root = tmp_path_factory.mktemp("uisec")
    data = root / "srv"
    archive = init_archive(data)
    rep = archive.add_rep("李伟")["id"]
    server = harness.ServerProcess(data).start()
    try:
        harness.lib_enroll(data, root / "home", server.url, rep)
        harness.add_customers(data, rep, ["上海华东贸易有限公司"])
        harness.lib_sync(root / "home")
        proc = UIProcess(root / "home", "ui").start()
        try:
            yield proc
        finally:
            proc.stop()
    finally:
        server.stop()


def test_the_launch_line_is_one_line_on_loopback(ui: UIProcess) -> None:
    assert ui.line.startswith("FieldVault is running at http://127.0.0.1:")
    assert "/launch?token=" in ui.launch_url


def test_without_the_launch_token_or_with_a_wrong_host_or_no_csrf_it_refuses(ui: UIProcess) -> None:
    with httpx.Client(base_url=ui.base, timeout=10) as anon:
        page = anon.get("/")
        assert page.status_code == 401
        for k, v in web.SECURITY_HEADERS.items():
            assert page.headers[k] == v
        assert anon.get("/customers").status_code == 401
        assert anon.get("/launch?token=wrong").status_code == 401
        assert anon.post("/visits", data={"summary": "x"}).status_code == 401

    with httpx.Client(base_url=ui.base, timeout=10) as browser:
        first = browser.get(ui.launch_url.removeprefix(ui.base))
        assert first.status_code == 303
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        page = browser.get("/")
        assert page.status_code == 200 and "<h1>" in page.text
        assert page.headers["Content-Security-Policy"] == web.CSP

        # DNS rebinding: the same cookie under another name is refused.
        assert browser.get("/", headers={"Host": f"evil.example:{ui.base.rsplit(':', 1)[1]}"}
                           ).status_code == 421

        # Every POST needs the session's CSRF token, in the form or the header.
        assert browser.post("/sync/now", data={}).status_code == 403
        assert browser.post("/sync/now", data={web.CSRF_FIELD: "forged"}).status_code == 403
        refused = browser.post("/visits", json={"summary": "x"}, headers={"Accept": "application/json"})
        assert refused.status_code == 403 and refused.json()["error"] == "csrf"
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token
        assert browser.post("/sync/now", data={web.CSRF_FIELD: token.group(1)}).status_code == 303
        assert browser.post("/sync/now", headers={web.CSRF_HEADER: token.group(1)}).status_code == 303

    with httpx.Client(base_url=ui.base, timeout=10) as late:
        # The launch token is one-time: a second browser cannot reuse the link.
        assert late.get(ui.launch_url.removeprefix(ui.base)).status_code == 401


def test_every_string_of_the_ui_is_translated() -> None:
    assert catalogs.untranslated(Path("agent/ui")) == []


def test_a_draft_is_saved_then_submitted_with_a_correction(ui: UIProcess) -> None:
    with httpx.Client(base_url=ui.base, timeout=10) as browser:
        session = UIProcess(ui.home, "ui")  # a second process: its own launch token
        try:
            session.start()
            browser.base_url = httpx.URL(session.base)
            browser.get(session.launch_url.removeprefix(session.base))
            form = browser.get("/visits/new").text
            token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
            assert token
            found = browser.get("/api/customers", params={"q": "华东贸易"}).json()
            assert [c["label"] for c in found] == ["上海华东贸易有限公司 FV000001"]
            saved = browser.post("/visits", data={
                web.CSRF_FIELD: token.group(1), "customer_id": found[0]["id"], "purpose": "service",
                "summary": "草稿", "started_at": "", "draft": "1"})
            assert saved.status_code == 303
            visit = saved.headers["location"].split("?")[0]
            assert 'class="status status-draft"' in browser.get(visit).text
            edited = browser.post(visit, data={web.CSRF_FIELD: token.group(1), "summary": "写完了",
                                               "submit": "1"})
            assert edited.status_code == 303
            page = browser.get(visit).text
            assert 'class="status status-submitted"' in page and "写完了" in page
            bad = browser.post("/visits", data={web.CSRF_FIELD: token.group(1), "customer_id":
                                                found[0]["id"], "purpose": "service", "summary": ""})
            assert bad.status_code == 422 and 'role="alert"' in bad.text
        finally:
            session.stop()
