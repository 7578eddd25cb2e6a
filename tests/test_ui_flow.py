"""The rep's local UI in a real browser (Debian chromium via Playwright) against a
real `fieldvault run` process and a real `fieldvault-server serve` process.

One browser page walks every screen in English, then again in 简体中文 after the
language switch; a returned visit is fixed and resubmitted, an approved one stays
read-only; with the server stopped a visit is saved and waits, and the background
sync sends it once the server is back; finally HR revokes the rep while the UI
runs: the next sync hands over and wipes, and the UI shows the wiped screen.
Every page is checked with axe, screenshotted, and no request leaves 127.0.0.1.
Waiting is always a bounded poll (Playwright's expect, or a loop with a limit)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from agent import wipe
from server.rules import Archive, init_archive

from . import harness
from .browser import Outside, assert_accessible, new_context, screenshot
from .harness import ServerProcess, server_cli
from .uiproc import UIProcess

pytestmark = pytest.mark.slow

T = {  # the few strings the test reads, per locale
    "en": {"today": "Today", "customers": "Customers", "saved": "Saved on this laptop, will sync.",
           "submitted": "Submitted", "approved": "Approved", "wiped": "This laptop was wiped",
           "log": "Log visit", "plan_submitted": "Submitted", "caps": "You can claim"},
    "zh_CN": {"today": "今天", "customers": "客户", "saved": "已保存在本机，将会同步。",
              "submitted": "已提交", "approved": "已审核通过", "wiped": "本机数据已清除",
              "log": "记录拜访", "plan_submitted": "已提交", "caps": "今天还可领取"},
}
SECRET_NOTES = ["ZEBRA-NEEDLE-7731 检修包装线", "OFFLINE-NEEDLE-4410 离线拜访"]


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
    customers: dict[str, dict[str, Any]]
    pool: list[dict[str, Any]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[World]:
    root = tmp_path_factory.mktemp("uiflow")
    data = root / "srv"
    archive = init_archive(data)
    archive.add_rep("王建国")
    rep = archive.add_rep("李伟", manager="王建国")["id"]
    archive.add_staff("wang", "manager", "王建国")
    server = ServerProcess(data).start()
    ui = None
    ctx = None
    try:
        home = root / "home"
        harness.lib_enroll(data, home, server.url, rep)
        names = ["上海华东贸易有限公司", "Acme Trading Ltd", "杭州青禾食品有限公司", "北京远景科技"]
        customers = {c["name"]: c for c in harness.add_customers(data, rep, names)}
        pool = harness.add_customers(data, None, ["深圳海岸物流", "Harbor Point Logistics"])
        harness.lib_sync(home)
        ui = UIProcess(home, "run", ("--every", "3", "--retry", "0.3")).start()
        ctx, guard = new_context(chromium, locale="en-GB")
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(ui.launch_url)
        yield World(data, archive, server, home, ui, ctx, guard, page, customers, pool)
    finally:
        if ctx is not None:
            ctx.close()
        if ui is not None:
            ui.stop()
        server.stop()


def check(w: World, name: str) -> None:
    """axe on the page as it is now, and its screenshot."""
    assert_accessible(w.page)
    screenshot(w.page, name)


def wait_synced(w: World, rounds: int = 120) -> dict[str, Any]:
    """Poll the UI's own sync state until nothing waits (bounded)."""
    state: dict[str, Any] = {}
    for _ in range(rounds):
        state = w.page.request.get(w.ui.base + "/sync/state").json()
        if state.get("pending") == 0 and not state.get("syncing") and state.get("last_success"):
            return state
        time.sleep(0.25)
    raise AssertionError(f"never synced: {state}")


def sync_now(w: World) -> None:
    w.page.goto(w.ui.base + "/sync")
    w.page.locator("form[action='/sync/now'] button").click()


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_every_page_in_each_language(world: World, locale: str) -> None:
    w, t, page = world, T[locale], world.page
    page.goto(w.ui.base + "/")
    if locale != "en":  # the language switch, remembered from here on
        page.select_option("#lang-select", locale)
        page.locator("form.lang button").click()
    expect(page.locator("h1")).to_contain_text(t["today"])
    expect(page.locator("html")).to_have_attribute("lang", "en" if locale == "en" else "zh-CN")
    check(w, f"today-{locale}")

    # Customers: search as you type, in Chinese and in English.
    page.locator("nav a[href='/customers']").click()
    expect(page.locator("h1")).to_have_text(t["customers"])
    page.wait_for_load_state()
    page.fill("#q", "华东")
    expect(page.locator("#customer-rows tr")).to_have_count(1)
    expect(page.locator("#customer-rows")).to_contain_text("上海华东贸易有限公司")
    page.fill("#q", "Acme")
    expect(page.locator("#customer-rows")).to_contain_text("Acme Trading Ltd")
    expect(page.locator("#customer-rows tr")).to_have_count(1)
    page.fill("#q", "")
    page.select_option("#grade", "C")
    expect(page.locator("#customer-rows tr")).to_have_count(4 if locale == "en" else 5)  # + the claim
    check(w, f"customers-{locale}")

    # The card: edit a field the rep may edit.
    name = "上海华东贸易有限公司"
    page.goto(w.ui.base + f"/customers/{w.customers[name]['id']}")
    phone = "+86 21 5555 01" + ("11" if locale == "en" else "22")
    page.fill("#f-phone", phone)
    page.locator("form.card-form button[type=submit]").click()
    expect(page.locator("[role=status]").first).to_have_text(t["saved"])
    expect(page.locator("#f-phone")).to_have_value(phone)
    check(w, f"customer-card-{locale}")

    # Log visit from the card, with a follow-up due today.
    page.locator("main a.button.primary").click()
    expect(page.locator("#visit-form")).to_be_visible()
    started = page.input_value("#started_at")
    page.select_option("#purpose", "order")
    page.check("#planned")
    page.fill("#location", "上海市浦东新区")
    page.fill("#summary", f"{SECRET_NOTES[0]} {locale}")
    page.fill("#outcome", "客户同意下月签约")
    page.fill("#next_at", started)  # due now: a follow-up on Today
    page.fill("#next_place", "客户办公室")
    page.fill("#next_content", "送样品")
    check(w, f"visit-form-{locale}")
    began = time.perf_counter()
    page.locator("#visit-form button[type=submit]").first.click()
    expect(page.locator("#saved")).to_have_text(t["saved"])
    print(f"log visit round trip in the browser: {(time.perf_counter() - began) * 1000:.0f} ms")
    visit_url = page.url.split("?")[0]
    expect(page.locator("main")).to_contain_text(t["submitted"])
    check(w, f"visit-{locale}")

    # Plan: choose a customer and a purpose for a day, submit it.
    page.locator("nav a[href='/plan']").click()
    day = page.input_value("#day")
    page.fill("#plan-customer", w.customers["Acme Trading Ltd"]["card_no"])
    page.select_option("#plan-purpose", "service")
    page.locator("button[value=add]").click()
    expect(page.locator("main table").first).to_contain_text("Acme Trading Ltd")
    page.locator("button[value=submit]").click()
    expect(page.locator("strong.status")).to_have_text(t["plan_submitted"])
    assert day in page.url
    check(w, f"plan-{locale}")

    # Sync: the saved work goes up in the background.
    sync_now(w)
    wait_synced(w)
    page.goto(w.ui.base + "/sync")
    expect(page.locator("#pending")).to_have_text("0")
    check(w, f"sync-{locale}")
    page.goto(visit_url)
    assert w.archive.get_visit(visit_url.rsplit("/", 1)[1])["summary"].startswith(SECRET_NOTES[0])

    # Pool: browse (online), caps explained, claim.
    page.locator("nav a[href='/pool']").click()
    expect(page.locator("#caps")).to_contain_text(t["caps"])
    check(w, f"pool-{locale}")
    target = w.pool[0 if locale == "en" else 1]
    page.locator(f"form[action='/pool/claim']:has(input[value='{target['id']}']) button").click()
    expect(page.locator("h1")).to_contain_text(target["name"])

    # Today: the plan, the follow-up, the Log visit button.
    page.locator("nav a[href='/']").click()
    expect(page.locator("main")).to_contain_text("客户办公室")
    expect(page.locator("main")).to_contain_text("Acme Trading Ltd")
    expect(page.locator("main a.button.primary")).to_have_text(t["log"])
    check(w, f"today-after-{locale}")
    assert w.guard.urls == []


def test_a_returned_visit_is_fixed_and_resubmitted_and_an_approved_one_stays_read_only(
        world: World) -> None:
    w, page = world, world.page
    page.goto(w.ui.base + f"/visits/new?customer={w.customers['北京远景科技']['id']}")
    page.fill("#summary", "演示新产品")
    page.locator("#visit-form button[type=submit]").first.click()
    expect(page.locator("#saved")).to_be_visible()
    visit_id = page.url.split("?")[0].rsplit("/", 1)[1]
    sync_now(w)
    wait_synced(w)

    server_cli(w.data, "visit", "return", visit_id, "--by", "wang", "--comment", "请写明洽谈结果")
    for _ in range(60):  # bounded: until the background sync brought the return down
        sync_now(w)
        wait_synced(w)
        page.goto(w.ui.base + "/sync")
        if page.locator("#attention").count():
            break
    expect(page.locator("#attention")).to_contain_text("请写明洽谈结果")
    check(w, "needs-attention")

    page.locator(f"#attention a[href='/visits/{visit_id}']").click()
    expect(page.locator(".attention .comment")).to_have_text("请写明洽谈结果")
    page.locator(f"a[href='/visits/{visit_id}/edit']").click()
    page.fill("#outcome", "客户同意试用三个月")
    page.locator("#visit-form button[type=submit]").first.click()
    expect(page.locator("dd.status")).to_have_text(T["zh_CN"]["submitted"])
    sync_now(w)
    wait_synced(w)
    archived = w.archive.get_visit(visit_id)
    assert (archived["status"], archived["outcome"]) == ("submitted", "客户同意试用三个月")

    server_cli(w.data, "visit", "approve", visit_id, "--by", "wang")
    for _ in range(60):
        sync_now(w)
        wait_synced(w)
        page.goto(w.ui.base + f"/visits/{visit_id}")
        if page.locator("dd.status-approved").count():
            break
    expect(page.locator("dd.status")).to_have_text(T["zh_CN"]["approved"])
    assert page.locator(f"a[href='/visits/{visit_id}/edit']").count() == 0
    check(w, "visit-approved")
    # Even a hand-made POST cannot change it.
    token = page.locator("input[name=csrf_token]").first.input_value()
    answer = page.request.post(w.ui.base + f"/visits/{visit_id}",
                               form={"csrf_token": token, "summary": "改"})
    assert answer.status == 422 and "read-only" in answer.text()
    assert w.archive.get_visit(visit_id)["summary"] == "演示新产品"


def log_visit(w: World, customer: str, summary: str) -> str:
    """A visit logged in the form (the UI is in Chinese by now); its id."""
    w.page.goto(w.ui.base + f"/visits/new?customer={w.customers[customer]['id']}")
    w.page.fill("#summary", summary)
    w.page.locator("#visit-form button[type=submit]").first.click()
    expect(w.page.locator("#saved")).to_have_text(T["zh_CN"]["saved"])
    return w.page.url.split("?")[0].rsplit("/", 1)[1]


def test_with_the_server_stopped_a_visit_waits_and_syncs_in_the_background(world: World) -> None:
    w, page = world, world.page
    w.server.stop()
    visit_id = log_visit(w, "杭州青禾食品有限公司", SECRET_NOTES[1])
    page.goto(w.ui.base + "/sync")
    expect(page.locator("#pending")).to_have_text("1")
    for _ in range(80):  # bounded: the debounced sync after the save failed: offline
        if w.page.request.get(w.ui.base + "/sync/state").json()["online"] is False:
            break
        time.sleep(0.25)
    page.goto(w.ui.base + "/sync")
    check(w, "sync-offline")

    w.server = ServerProcess(w.data, port=w.server.port).start()
    state = wait_synced(w, rounds=240)  # the timer's retry, no button pressed
    assert state["online"] is True
    assert w.archive.get_visit(visit_id)["summary"] == SECRET_NOTES[1]
    page.goto(w.ui.base + f"/visits/{visit_id}")
    expect(page.locator("main")).not_to_contain_text(re.compile("尚未同步到服务器"))


def test_work_stored_on_the_server_awaiting_its_check_is_shown_and_never_lost(
        world: World) -> None:
    """An op the archive stored to apply later (a long backlog's, agent/sync.DEFER_FROM)
    shows on the Sync page until its verdict comes; one the archive turns out not to
    hold is sent again."""
    w, page = world, world.page
    w.server.stop()
    visit_id = log_visit(w, "北京远景科技", "存档待审 stored, verdict to come")
    with harness.open_store(w.home) as store:  # as a stored batch's answer leaves it
        store.mark_received(store.pending_ops(10)[-1]["seq"])
    page.goto(w.ui.base + "/sync")
    expect(page.locator("#received")).to_have_text("1")
    expect(page.locator("#pending")).to_have_text("0")
    check(w, "sync-received")
    # The archive never stored it (it was only marked so here): its verdict is
    # `unknown`, and the timer's next rounds send it again.
    w.server = ServerProcess(w.data, port=w.server.port).start()
    card = w.customers["北京远景科技"]["id"]
    for _ in range(240):  # bounded
        if visit_id in {v["id"] for v in w.archive.list_visits(customer=card)}:
            break
        time.sleep(0.25)
    assert w.archive.get_visit(visit_id)["summary"] == "存档待审 stored, verdict to come"
    wait_synced(w, rounds=240)
    page.goto(w.ui.base + "/sync")
    expect(page.locator("#received")).to_have_count(0)


def test_revocation_while_the_ui_runs_wipes_and_shows_the_wiped_screen(world: World) -> None:
    w, page = world, world.page
    server_cli(w.data, "revoke", "李伟", "--reason", "resigned")
    sync_now(w)
    for _ in range(120):  # bounded: until the UI says wiped
        page.goto(w.ui.base + "/")
        if page.locator("h1").inner_text() == T["zh_CN"]["wiped"]:
            break
        time.sleep(0.25)
    expect(page.locator("h1")).to_have_text(T["zh_CN"]["wiped"])
    check(w, "wiped")
    page.goto(w.ui.base + "/customers")
    expect(page.locator("h1")).to_have_text(T["zh_CN"]["wiped"])

    assert (w.home / wipe.WIPED_MARKER).exists()
    for name in (*wipe.VAULT_FILES, "config.json", "device_sign.pem", "device_box.pem"):
        assert not (w.home / name).exists(), name
    needles = [n.split()[0].encode() for n in SECRET_NOTES] + [
        "上海华东贸易有限公司".encode(), b"Acme Trading"]
    for path in (p for p in w.home.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert not [n for n in needles if n in content], path
    assert w.guard.urls == []
