"""A sales manager (销售经理) at work in the console, in a real browser against a real
`fieldvault-server serve`, with the rep's laptop on the real agent CLI: the team
dashboard, approving and returning visits in bulk (the laptop sees the return at its
next sync), approving a plan, customers (filters, card, lock, distribute with a
preview), the rep's page, the daily and weekly reports, and the weekly report's
audited CSV export of the team's weekly progress (report.export). Every page axe-clean and screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from schema.enums import Grade
from schema.models import CustomerCreate
from server.rules import Archive, init_archive

from . import harness
from .browser import assert_accessible, new_context, png, screenshot
from .harness import ServerProcess, agent_cli

PASSWORD = "correct horse battery"


@dataclass
class World:
    server: ServerProcess
    archive: Archive
    home: Path
    rep_id: str
    visits: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console-manager")
    data = root / "srv"
    archive = init_archive(data)
    archive.add_rep("王建国")
    rep_id = archive.add_rep("李伟", manager="王建国")["id"]
    archive.add_rep("张敏", manager="王建国")
    archive.add_staff("wang", "manager", "王建国", password=PASSWORD)
    archive.add_staff("root", "admin", password=PASSWORD)
    cards = [archive.add_customer(CustomerCreate(name=n, phone=f"0571-8888 123{i}", grade=Grade(g)), "李伟")
             for i, (n, g) in enumerate((("杭州青禾食品有限公司", "A"), ("宁波东港物流", "B"),
                                         ("绍兴纺织", "C")))]
    for name in ("温州鞋业", "嘉兴五金"):
        archive.add_customer(CustomerCreate(name=name))  # in the pool, for distribution
    server = ServerProcess(data).start()
    home = root / "agent"
    try:
        harness.lib_enroll(data, home, server.url, rep_id)
        agent_cli(home, "sync")
        photo = root / "shelf.png"  # the second visit carries a photo
        photo.write_bytes(png(40, 30))
        visits = [agent_cli(home, "visit", "log", "--customer", c["card_no"], "--purpose", p,
                            "--summary", s, *extra)["id"]
                  for c, p, s, extra in zip(cards, ("service", "order", "market_research"),
                                            ("检修2号包装线", "订购 200 箱", "了解竞品价格"),
                                            ((), ("--attach", str(photo)), ()), strict=True)]
        today = datetime.now().astimezone().date().isoformat()
        agent_cli(home, "plan", "add", "--date", today, "--customer", cards[0]["card_no"],
                  "--purpose", "service", "--time", "09:30")
        agent_cli(home, "plan", "submit", "--date", today)
        agent_cli(home, "sync")
        yield World(server, archive, home, rep_id, visits)
    finally:
        server.stop()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/console/"), page.url
    # The click returns once the request is sent: on a loaded machine the menu can still
    # be on its way when the caller counts its links.
    expect(page.get_by_role("navigation", name="Main menu")).to_be_visible()


def look(page: Page, name: str) -> None:
    # After a click the next page may still be on its way (axe would run on a document
    # being replaced): its load first.
    page.wait_for_load_state("load")
    assert_accessible(page)
    screenshot(page, name)


def test_a_manager_reviews_plans_customers_and_reports(world: World, chromium: Browser) -> None:
    url = world.server.url
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, url, "wang")
    menu = page.get_by_role("navigation", name="Main menu")
    for label in ("Team", "Approvals", "Plans", "Disputes", "Customers", "Distribute",
                  "Daily report", "Weekly progress"):
        assert menu.get_by_role("link", name=label).count() == 1, label
    assert menu.get_by_role("link", name="Call-backs").count() == 0

    # The dashboard: three visits wait, one plan; the chart has its table.
    menu.get_by_role("link", name="Team").click()
    figures = " ".join(page.locator(".figures").inner_text().split())
    assert "3 visits waiting for approval" in figures and "1 plans to approve" in figures
    chart_label = page.locator("svg.chart").get_attribute("aria-label", timeout=5000)
    assert chart_label is not None and chart_label.startswith("Visits per day per rep")
    look(page, "console-manager-team")

    # Approvals: approve one, return two with a comment, in bulk (keyboard: space ticks).
    menu.get_by_role("link", name="Approvals").click()
    assert page.locator("tbody tr").count() == 3
    look(page, "console-manager-approvals")
    first, second, third = world.visits
    page.locator(f"input[value='{first}']").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Approve selected").click()
    assert page.get_by_role("status").inner_text() == "Visits approved: 1."
    page.locator(f"input[value='{second}']").check()
    page.locator(f"input[value='{third}']").check()
    page.get_by_role("button", name="Return selected").click()  # no comment: refused
    assert "comment" in page.get_by_role("alert").inner_text()
    page.locator(f"input[value='{second}']").check()
    page.locator(f"input[value='{third}']").check()
    page.get_by_label("Comment (required to return)").fill("请写明洽谈结果")
    page.get_by_role("button", name="Return selected").click()
    assert page.get_by_role("status").inner_text() == "Visits returned: 2."
    assert "Nothing waits for approval." in page.locator("main").inner_text()
    # The rep's laptop sees the return at its next sync.
    agent_cli(world.home, "sync")
    local = agent_cli(world.home, "visit", "show", second)
    assert (local["status"], local["review_comment"]) == ("returned", "请写明洽谈结果")
    assert agent_cli(world.home, "visit", "show", first)["status"] == "approved"
    page.goto(f"{url}/console/visits/{second}")
    assert [c.inner_text() for c in page.locator("#history tbody tr td:nth-child(4)").all()] == [
        "Submitted", "Returned"]
    # Its photo, served from the archive's blob folder, and the laptop's signature.
    link = page.get_by_role("link", name="shelf.png")
    shown = page.request.get(url + str(link.get_attribute("href")))
    assert shown.status == 200 and shown.body() == png(40, 30)
    assert shown.headers["content-type"] == "image/png"
    # (a property check: wait_for_function polls through eval, which the CSP refuses)
    expect(page.locator("img.thumb").first).to_have_js_property("complete", True, timeout=30_000)
    assert page.evaluate("document.querySelector('img.thumb').naturalWidth") == 40
    assert page.locator("#evidence tbody tr").count() >= 1
    look(page, "console-manager-visit")

    # The plan: against what was done, approved.
    with page.expect_navigation():
        menu.get_by_role("link", name="Plans").click()
    look(page, "console-manager-plans")
    page.locator("tbody a").first.click()
    look(page, "console-manager-plan")
    page.get_by_role("button", name="Approve plan").click()
    assert page.get_by_role("status").inner_text() == "Plan approved."
    assert world.archive.list_plans(status="approved")[0]["reviewed_by"] in ("wang", "staff:wang")

    # Customers: filters, the card, lock as a key account.
    menu.get_by_role("link", name="Customers").click()
    assert page.locator("tbody tr").count() == 5  # the team's three and the pool's two
    page.get_by_label("Grade").select_option("A")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("tbody tr").count() == 1
    look(page, "console-manager-customers")
    page.locator("tbody a").first.click()
    page.get_by_role("button", name="Lock as a key account").click()
    assert page.get_by_role("status").inner_text() == "Customer locked as a key account."
    look(page, "console-manager-customer")
    page.goto(f"{url}/console/customers?locked=yes")
    assert page.locator("tbody tr").count() == 1

    # Distribute the pool: the plan first, nothing changed, then applied.
    menu.get_by_role("link", name="Distribute").click()
    page.get_by_role("button", name="Show the plan").click()
    assert page.locator("tbody tr").count() == 2
    assert world.archive.count_customers(None) == 5 and len(world.archive.pool_entries()) == 2
    look(page, "console-manager-distribute")
    page.get_by_role("button", name="Apply this plan").click()
    assert page.get_by_role("status").inner_text() == "Customers distributed: 2."
    assert world.archive.pool_entries() == []

    # The rep's page, the daily report and the weekly progress, exported as CSV.
    page.goto(f"{url}/console/reps/{world.rep_id}")
    assert page.get_by_role("heading", level=1).inner_text() == "李伟"
    look(page, "console-manager-rep")
    menu.get_by_role("link", name="Daily report").click()
    page.get_by_label("Rep").select_option(label="李伟")
    page.get_by_role("button", name="Show").click()
    assert "3 visits" in " ".join(page.locator(".figures").inner_text().split())
    look(page, "console-manager-daily")
    menu.get_by_role("link", name="Weekly progress").click()
    assert page.locator("table caption", has_text="Progress per rep").count() == 1
    look(page, "console-manager-weekly")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "李伟" in text and "张敏" in text
    exports = [e for e in world.archive.audit_entries() if e["action"] == "export.report"]
    assert exports and exports[-1]["actor"] == "staff:wang"
    page.get_by_role("link", name="简体中文").click()
    assert page.get_by_role("heading", level=1).inner_text() == "每周团队进度"
    look(page, "console-manager-weekly-zh")
    page.get_by_role("link", name="English").click()
    assert guard.urls == []
    ctx.close()
