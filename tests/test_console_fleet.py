"""The fleet view, in a real browser against a real `fieldvault-server serve` with real
laptops (the agent CLI): every laptop most at risk first (a departed rep's laptop not
yet wiped, then one past its block deadline, then the rest); a manager sees their
team's laptops only; the staff API answers the same; HR and verifiers get 403."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from schema.clock import ManualClock
from server.rules import Archive, open_archive

from .browser import assert_accessible, new_context, screenshot
from .harness import ServerProcess, agent_cli, archive, init_server

PASSWORD = "correct horse battery"


@dataclass
class World:
    data: Path
    server: ServerProcess
    token: str  # the admin's staff API token

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console-fleet")
    data = root / "server"
    init_server(data)
    # Accounts and reps through the archive's library (CLI start-up costs seconds each);
    # the laptops are the real agent CLI.
    arch = archive(data)
    arch.add_rep("Lead")
    arch.add_rep("李伟", "Lead")
    arch.add_rep("赵离", "Lead")
    arch.add_rep("王芳")  # in no one's team
    for name, role, *rep in (("root", "admin"), ("mgr", "manager", "Lead"), ("hana", "hr"),
                             ("vera", "verifier")):
        arch.add_staff(name, role, *rep, password=PASSWORD)
    token = arch.create_staff_token("root")
    server = ServerProcess(data).start()
    # 王芳's laptop last checked in four days ago (its lease issued by an archive whose
    # clock says so): past its 72-hour block deadline now, without waiting for one.
    arch.set_policy(72, None, None)
    enroll_with(arch, root / "wang", server.url, "王芳")
    (wang,) = arch.list_devices("王芳")
    four_days_ago = ManualClock(datetime.now(UTC) - timedelta(days=4))
    open_archive(data, four_days_ago).issue_lease(wang["id"], None)
    enroll_with(arch, root / "li", server.url, "李伟")
    enroll_with(arch, root / "zhao", server.url, "赵离")
    arch.revoke("赵离", "resigned")  # its laptop not yet wiped
    yield World(data, server, token)
    server.stop()


def enroll_with(arch: Archive, home: Path, url: str, rep: str) -> None:
    code, _ = arch.create_enroll_code(rep, timedelta(hours=1))
    agent_cli(home, "enroll", "--server", url, "--code", code)


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def fleet_rows(page: Page) -> list[tuple[str, str]]:
    rows = page.locator("#fleet tbody tr")
    return [(rows.nth(i).locator("td").nth(0).inner_text(),
             rows.nth(i).locator("td").nth(1).inner_text()) for i in range(rows.count())]


def test_the_fleet_by_risk_for_an_admin_and_a_managers_team(world: World,
                                                             chromium: Browser) -> None:
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, world.url, "root")
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Fleet").click()
    # The click returns once the request is sent: wait for the page before reading it.
    expect(page.locator("#fleet tbody tr")).to_have_count(3)
    assert fleet_rows(page) == [("赵离", "Awaiting wipe"), ("王芳", "Blocked (offline too long)"),
                                ("李伟", "OK")]
    assert "hours old" in page.locator("#fleet tbody tr").nth(2).inner_text()
    assert_accessible(page)
    screenshot(page, "console-fleet-admin")
    api = httpx.get(world.url + "/v1/staff/fleet", timeout=30,
                    headers={"authorization": f"Bearer {world.token}"})
    assert [(d["rep_name"], d["risk"]) for d in api.json()] == [
        ("赵离", "wipe_pending"), ("王芳", "blocked"), ("李伟", "ok")]
    assert api.json()[1]["window_used"] > 1 and api.json()[2]["unsynced_ops"] is None
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, world.url, "mgr")
    page.goto(world.url + "/console/fleet")
    assert fleet_rows(page) == [("赵离", "Awaiting wipe"), ("李伟", "OK")]
    page.get_by_role("link", name="简体中文").click()
    assert fleet_rows(page) == [("赵离", "等待擦除"), ("李伟", "正常")]
    assert_accessible(page)
    screenshot(page, "console-fleet-manager-zh")
    page.get_by_role("link", name="English").click()
    page.get_by_role("button", name="Sign out").click()

    for name in ("hana", "vera"):
        sign_in(page, world.url, name)
        assert page.get_by_role("navigation", name="Main menu").get_by_role(
            "link", name="Fleet").count() == 0
        assert page.goto(world.url + "/console/fleet").status == 403  # type: ignore[union-attr]
        assert_accessible(page)
        page.goto(world.url + "/console/")
        page.get_by_role("button", name="Sign out").click()
    assert guard.urls == []
    ctx.close()
