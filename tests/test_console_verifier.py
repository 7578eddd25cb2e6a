"""The call-back office (电话回访) in the console, in a real browser against a real
`fieldvault-server serve`: one visit at a time with the customer's phone and decision
maker, verified or disputed with a note, then the next; the verifier's own figures;
and the dispute on the rep's manager's list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from schema.models import CustomerCreate
from server.rules import Archive, init_archive

from . import harness
from .browser import assert_accessible, new_context, screenshot
from .harness import ServerProcess, agent_cli

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Archive, list[str]]]:
    root = tmp_path_factory.mktemp("console-verifier")
    data = root / "srv"
    archive = init_archive(data)
    archive.add_rep("王建国")
    rep_id = archive.add_rep("李伟", manager="王建国")["id"]
    archive.add_staff("wang", "manager", "王建国", password=PASSWORD)
    archive.add_staff("vera", "verifier", password=PASSWORD)
    archive.set_callback_policy({"sample_pct": 100})  # every visit is called
    cards = [archive.add_customer(CustomerCreate(name=n, phone=p, decision_maker=d), "李伟")
             for n, p, d in (("杭州青禾食品有限公司", "0571-8765 4321", "陈经理"),
                             ("Harbor Point Logistics", "+852 2528 3301", "Mark Ellison"))]
    server = ServerProcess(data).start()
    home: Path = root / "agent"
    try:
        harness.lib_enroll(data, home, server.url, rep_id)
        agent_cli(home, "sync")
        visits = [agent_cli(home, "visit", "log", "--customer", c["card_no"], "--purpose", "order",
                            "--summary", s)["id"]
                  for c, s in zip(cards, ("订购 200 箱", "Ordered 12 scanners"), strict=True)]
        agent_cli(home, "sync")
        yield server, archive, visits
    finally:
        server.stop()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/console/"), page.url


def test_a_verifier_works_the_queue_and_a_dispute_reaches_the_manager(
        world: tuple[ServerProcess, Archive, list[str]], chromium: Browser) -> None:
    server, archive, visits = world
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, server.url, "vera")
    menu = page.get_by_role("navigation", name="Main menu")
    links = [a.inner_text() for a in menu.get_by_role("link").all()]
    assert "Call-backs" in links and "Approvals" not in links and "Customers" not in links
    menu.get_by_role("link", name="Call-backs").click()
    call = page.locator("section.visit")
    assert "0571-8765 4321" in call.inner_text() and "陈经理" in call.inner_text()
    assert_accessible(page)
    screenshot(page, "console-verifier-call")
    page.get_by_role("button", name="Verified").click()
    assert page.get_by_role("status").inner_text().startswith("Recorded as verified")
    assert "+852 2528 3301" in call.inner_text() and "Mark Ellison" in call.inner_text()
    page.get_by_role("button", name="Disputed").click()  # a dispute needs a note
    assert page.get_by_role("alert").count() == 1
    page.go_back()
    page.get_by_label("Note (required for a dispute)").fill("only 6 scanners ordered")
    page.get_by_role("button", name="Disputed").click()
    assert page.get_by_role("status").inner_text().startswith("Recorded as disputed")
    assert "No visit waits for a call-back." in page.locator("main").inner_text()
    today = page.locator("tbody tr").first.inner_text().split()
    assert today[-2:] == ["1", "1"]  # verified, disputed today
    assert_accessible(page)
    screenshot(page, "console-verifier-done")
    assert [archive.get_visit(v)["callback"] for v in visits] == ["verified", "disputed"]
    ctx.close()

    # The rep's manager sees the dispute: on the dashboard and in the list.
    ctx, guard2 = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, server.url, "wang")
    page.goto(server.url + "/console/team")
    assert "1 disputed visits" in " ".join(page.locator(".figures").inner_text().split())
    page.get_by_role("link", name="disputed visits").click()
    row = page.locator("tbody tr")
    assert row.count() == 1 and "only 6 scanners ordered" in row.inner_text()
    assert "staff:vera" in row.inner_text()
    assert_accessible(page)
    screenshot(page, "console-manager-disputes")
    assert guard.urls == [] and guard2.urls == []
    ctx.close()
