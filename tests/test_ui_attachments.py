"""Attachments in the rep's UI, in a real browser (Debian chromium via Playwright)
against a real `fieldvault run` process and a real `fieldvault-server serve` process.

Issue 12's acceptance step: with the server stopped, a visit is logged with a photo
(uploaded in the form) and a signed form (dropped into the inbox folder, which the
running app took into the vault); the visit page shows the photo from the vault; the
server starts, the background sync sends everything, and the archive has the visit,
its attachments with the same sha256 and the laptop's signature. A file over the limit
is refused with the limit named; the attachment route is behind the session. Every
page is checked with axe and screenshotted; no request leaves 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from playwright.sync_api import Browser, BrowserContext, Page, expect

from agent.ui import attach
from schema import evidence
from schema.models import VisitCreate
from schema.signing import b64d
from server.rules import Archive, init_archive

from . import harness
from .browser import Outside, assert_accessible, new_context, png, screenshot
from .harness import ServerProcess
from .uiproc import UIProcess

pytestmark = pytest.mark.slow


@dataclass
class World:
    data: Path
    archive: Archive
    server: ServerProcess
    home: Path
    ui: UIProcess
    ctx: BrowserContext
    guard: Outside
    page: Page
    customer: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[World]:
    root = tmp_path_factory.mktemp("uiattach")
    data = root / "srv"
    archive = init_archive(data)
    rep = archive.add_rep("李伟")["id"]
    server = ServerProcess(data).start()
    ui = None
    ctx = None
    try:
        home = root / "home"
        harness.lib_enroll(data, home, server.url, rep)
        (customer,) = harness.add_customers(data, rep, ["宁波港湾物流有限公司"])
        harness.lib_sync(home)
        ui = UIProcess(home, "run", ("--every", "3", "--retry", "0.3")).start()
        ctx, guard = new_context(chromium, locale="en-GB")
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(ui.launch_url)
        yield World(data, archive, server, home, ui, ctx, guard, page, customer)
    finally:
        if ctx is not None:
            ctx.close()
        if ui is not None:
            ui.stop()
        server.stop()


def wait_synced(w: World, rounds: int = 240) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _ in range(rounds):  # bounded poll of the UI's own sync state
        state = w.page.request.get(w.ui.base + "/sync/state").json()
        if state.get("pending") == 0 and not state.get("syncing") and state.get("last_success"):
            return state
        time.sleep(0.25)
    raise AssertionError(f"never synced: {state}")


def test_offline_visit_with_a_photo_and_an_inbox_form_syncs_with_its_signature(
        world: World, tmp_path: Path) -> None:
    w, page = world, world.page
    form_pdf = b"%PDF-1.4 signed delivery form " + bytes(range(256)) * 4
    dropped = w.home / "inbox" / "签收单.pdf"
    for _ in range(120):  # bounded: the watcher made the folder when `run` started
        if dropped.parent.is_dir():
            break
        time.sleep(0.25)
    dropped.write_bytes(form_pdf)
    for _ in range(120):  # bounded: until the watcher took it into the vault
        if not dropped.exists():
            break
        time.sleep(0.25)
    assert not dropped.exists(), "the inbox watcher did not take the file"

    w.server.stop()
    photo = tmp_path / "storefront.png"
    photo.write_bytes(png(64, 48))
    page.goto(w.ui.base + f"/visits/new?customer={w.customer['id']}")
    page.fill("#summary", "门头照片和签收单")
    page.set_input_files("#files", str(photo))
    box = page.locator("#inbox-files input[type=checkbox]")
    expect(box).to_have_count(1)
    box.check()
    assert_accessible(page)
    screenshot(page, "visit-form-attachments")
    page.locator("#visit-form button[type=submit]").first.click()
    expect(page.locator("#saved")).to_be_visible()
    visit_id = page.url.split("?")[0].rsplit("/", 1)[1]

    thumb = page.locator("img.thumb")
    expect(thumb).to_have_count(1)
    # The thumbnail is served from the vault; wait (bounded) until the browser decoded it.
    # (a property check: wait_for_function polls through eval, which the CSP refuses)
    expect(thumb).to_have_js_property("complete", True, timeout=30_000)
    assert page.evaluate("document.querySelector('img.thumb').naturalWidth") == 64
    src = w.ui.base + str(thumb.get_attribute("src"))
    shown = page.request.get(src)
    assert shown.body() == photo.read_bytes() and shown.headers["content-type"] == "image/png"
    assert httpx.get(src).status_code == 401  # no session cookie: refused
    assert_accessible(page)
    screenshot(page, "visit-attachments")
    page.goto(w.ui.base + "/sync")
    expect(page.locator("#pending")).to_have_text("1")

    w.server = ServerProcess(w.data, port=w.server.port).start()
    wait_synced(w)  # the background sync's retry, no button pressed
    visit = w.archive.get_visit(visit_id)
    proof = w.archive.visit_evidence(visit_id)
    shas = {hashlib.sha256(photo.read_bytes()).hexdigest(), hashlib.sha256(form_pdf).hexdigest()}
    assert {a["sha256"] for a in proof["attachments"]} == shas
    for sha in shas:
        blob = w.data / "blobs" / sha[:2] / sha
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
    (rev1,) = proof["evidence"]
    device = w.archive.get_device(rev1["device_id"])
    assert device is not None
    content = evidence.content_of(VisitCreate.model_validate(
        {k: visit[k] for k in VisitCreate.model_fields}))
    Ed25519PublicKey.from_public_bytes(device.sign_public_key).verify(
        b64d(rev1["signature"]), evidence.message(device.id, "visit.create", visit_id, content,
                                                  rev1["attachments"], rev1["device_time"]))
    assert w.guard.urls == []


def test_a_file_over_the_limit_is_refused_with_the_limit_named(world: World,
                                                               tmp_path: Path) -> None:
    w, page = world, world.page
    big = tmp_path / "scan.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(evidence.MAX_ATTACHMENT_BYTES + 1024 * 1024 - 2))
    page.goto(w.ui.base + f"/visits/new?customer={w.customer['id']}")
    page.fill("#summary", "太大的扫描件")
    page.set_input_files("#files", str(big))
    page.locator("#visit-form button[type=submit]").first.click()
    expect(page.locator("p.error[role=alert]")).to_contain_text(
        "scan.jpg is 21 MB, over the 20 MB limit for one attachment")
    assert_accessible(page)
    assert w.guard.urls == []

    # a body over the cap (5 files of 20 MB) is refused before a byte of it is read
    parts = urlsplit(w.ui.base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest("POST", "/visits")
        conn.putheader("Content-Length", str(attach.BODY_MAX_BYTES + 1))
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413
        assert b"at most 5 files of 20 MB" in answer.read()
    finally:
        conn.close()
