"""A card's ownership history (issue 12's Customers page): the vault keeps only the
current owner, so the card page asks the server while online, as the pool does.

A real `fieldvault-server serve` process and real agents: a customer given to 张敏
and reassigned to 李伟. 李伟's laptop gets both periods with their dates (in the UI, in
a real browser, checked with axe); 张敏's laptop, no longer the owner, gets the same
404 as for a card that does not exist; with the server stopped the card page still
loads at once and says the history is shown when online."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from agent import service
from agent.home import AgentConfig
from agent.transport import ServerRefused
from server.rules import init_archive

from . import harness
from .browser import assert_accessible, new_context, screenshot
from .harness import ServerProcess
from .uiproc import UIProcess

pytestmark = pytest.mark.slow


@dataclass
class World:
    server: ServerProcess
    li: tuple[Path, AgentConfig]
    zhang: tuple[Path, AgentConfig]
    customer: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("owners")
    data = root / "srv"
    archive = init_archive(data)
    zhang, li = archive.add_rep("张敏")["id"], archive.add_rep("李伟")["id"]
    (customer,) = harness.add_customers(data, zhang, ["宁波港湾物流有限公司"])
    archive.assign(customer["id"], li, "territory change", "admin")
    server = ServerProcess(data).start()
    try:
        li_home, zhang_home = root / "li", root / "zhang"
        li_cfg = harness.lib_enroll(data, li_home, server.url, li)
        zhang_cfg = harness.lib_enroll(data, zhang_home, server.url, zhang)
        harness.lib_sync(li_home)
        yield World(server, (li_home, li_cfg), (zhang_home, zhang_cfg), customer)
    finally:
        server.stop()


def test_the_owner_reads_both_periods_and_anyone_else_gets_404(world: World) -> None:
    periods = service.customer_ownership(*world.li, world.customer["id"])
    assert [(p["rep_name"], p["source"]) for p in periods] == [
        ("张敏", "assigned"), ("李伟", "assigned")]
    assert periods[0]["until"] == periods[1]["since"] and periods[1]["until"] is None
    with pytest.raises(ServerRefused) as refused:
        service.customer_ownership(*world.zhang, world.customer["id"])
    assert (refused.value.status, refused.value.code) == (404, "unknown_customer")
    with pytest.raises(ServerRefused) as missing:  # the same answer as for no card at all
        service.customer_ownership(*world.zhang, "no_such_card_1")
    assert (missing.value.status, missing.value.code) == (404, "unknown_customer")


def test_card_page_shows_the_history_online_and_says_so_offline(
        world: World, chromium: Browser) -> None:
    ui = UIProcess(world.li[0], "ui").start()
    ctx, guard = new_context(chromium, locale="en-GB")
    try:
        page: Page = ctx.new_page()
        page.set_default_timeout(20_000)
        page.goto(ui.launch_url)
        card_url = f"{ui.base}/customers/{world.customer['id']}"
        page.goto(card_url)
        section = page.get_by_role("region", name="Ownership history")
        rows = section.locator("tbody tr")
        expect(rows).to_have_count(2)
        year = str(datetime.now(UTC).year)
        first, second = rows.nth(0).inner_text(), rows.nth(1).inner_text()
        assert "张敏" in first and "Assigned" in first and year in first
        assert "李伟" in second and "Assigned" in second and "now" in second
        assert_accessible(page)
        screenshot(page, "customer-ownership")

        world.server.stop()
        started = time.monotonic()
        page.goto(card_url)
        expect(section).to_contain_text("Shown when online.")
        assert time.monotonic() - started < 5  # never hangs on a server that is down
        expect(page.get_by_role("heading", level=1)).to_contain_text("宁波港湾物流有限公司")
        assert guard.urls == []
    finally:
        ctx.close()
        ui.stop()
