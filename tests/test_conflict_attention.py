"""A card field the rep and the office both changed: the archive keeps the office's
value, and the rep sees it, with their own value, until they dismiss it: in
`fieldvault status` (JSON and text) and on the UI's Sync page (a real browser).

A conflict is made as tests/test_conflicts.py makes one: the rep edits a field
offline with the agent CLI while the office edits the same field with the server CLI,
then the rep syncs (the real CLI, against a real server process, real SQLCipher)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from server.rules import Archive, init_archive

from . import harness
from .browser import assert_accessible, new_context, screenshot
from .harness import AGENT, ServerProcess, agent_cli, server_cli
from .uiproc import UIProcess


@dataclass
class World:
    data: Path
    archive: Archive
    server: ServerProcess
    home: Path
    customers: list[dict[str, Any]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("conflict-attention")
    data = root / "srv"
    archive = init_archive(data)
    rep = archive.add_rep("陈静 Chen Jing")["id"]
    server = ServerProcess(data).start()
    try:
        home = root / "home"
        harness.lib_enroll(data, home, server.url, rep)
        customers = harness.add_customers(data, rep, ["上海华东贸易有限公司", "Acme Trading Ltd"])
        harness.lib_sync(home)
        yield World(data, archive, server, home, customers)
    finally:
        server.stop()


def conflict_on(w: World, card: dict[str, Any], field: str, mine: str, office: str) -> None:
    """The rep edits `field` offline, the office edits it too, then the rep syncs."""
    flag = "--" + field.replace("_", "-")
    agent_cli(w.home, "customer", "edit", card["id"], flag, mine)
    server_cli(w.data, "customer", "edit", card["card_no"], flag, office)
    assert agent_cli(w.home, "sync")["results"] == {"conflict": 1}


def open_conflicts(w: World) -> list[dict[str, Any]]:
    return agent_cli(w.home, "status")["attention"]["conflicts"]  # type: ignore[no-any-return]


def test_status_shows_both_values_until_dismissed(world: World) -> None:
    w, card = world, world.customers[0]
    conflict_on(w, card, "phone", "021-6000 0002", "021-6000 0003")

    (conflict,) = open_conflicts(w)
    assert conflict["customer_id"] == card["id"]
    assert conflict["fields"] == [{"field": "phone", "mine": "021-6000 0002",
                                   "kept": "021-6000 0003"}]
    status = agent_cli(w.home, "status")
    assert status["attention"]["counts"]["conflicts"] == 1
    text = subprocess.run([AGENT, "status", "--home", str(w.home)], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    assert "1 conflict" in text
    assert "phone: yours '021-6000 0002' not kept, the office's '021-6000 0003' stands" in text

    assert agent_cli(w.home, "customer", "dismiss-conflict", conflict["op_id"]) == {
        "dismissed": conflict["op_id"]}
    assert open_conflicts(w) == []
    again = agent_cli(w.home, "customer", "dismiss-conflict", conflict["op_id"], check=False)
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [
        f"error: no open conflict {conflict['op_id']}: see `fieldvault status` for the open ones"]


def test_sync_page_shows_both_values_and_dismisses(world: World, chromium: Browser) -> None:
    w, card = world, world.customers[1]
    conflict_on(w, card, "decision_maker", "刘总 (GM)", "王经理 (buyer)")

    ui = UIProcess(w.home, "ui").start()
    ctx, guard = new_context(chromium, locale="en-GB")
    try:
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(ui.launch_url)
        page.goto(ui.base + "/sync")
        rows = page.locator("#conflicts tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.locator("td").nth(0)).to_contain_text(card["name"])
        expect(rows.locator("td").nth(1)).to_have_text("Decision maker")
        expect(rows.locator("td.mine")).to_have_text("刘总 (GM)")
        expect(rows.locator("td.kept")).to_have_text("王经理 (buyer)")
        assert rows.locator("td a").get_attribute("href") == f"/customers/{card['id']}"
        assert_accessible(page)
        screenshot(page, "sync-conflict")

        rows.locator("button", has_text="Dismiss").click()
        expect(page.locator("#conflicts")).to_have_count(0)
        assert guard.urls == []
    finally:
        ctx.close()
        ui.stop()
    assert open_conflicts(w) == []
