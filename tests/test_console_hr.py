"""HR at work in the console, in a real browser against a real `fieldvault-server serve`
and a real rep's laptop (the agent CLI): people and their laptops, a departure with its
preview (which writes nothing), confirmed; the laptop syncs, flushes its offline visit
into quarantine and wipes itself; the departure report shows the wipe receipt and every
customer's new owner. HR tokens shown once. Other roles get 403 pages, a forged form post
carrying another role's valid session and CSRF token included."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from .browser import assert_accessible, new_context, screenshot
from .harness import (
    ServerProcess,
    add_customers,
    agent_cli,
    archive,
    enroll,
    init_server,
    log_visits,
)

PASSWORD = "correct horse battery"
TEAM = ("李伟", "张敏", "王芳")


@dataclass
class World:
    data: Path
    home: Path
    server: ServerProcess
    leaver: str
    customers: list[str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console-hr")
    data = root / "server"
    init_server(data)
    # Accounts, reps and cards through the archive's library (CLI start-up costs seconds
    # each); the laptop is the real agent CLI.
    arch = archive(data)
    arch.add_rep("Lead")
    for name in TEAM:
        arch.add_rep(name, "Lead")
    leaver = arch.add_rep("赵离", "Lead")["id"]
    customers = [c["id"] for c in add_customers(data, leaver, [f"客户 {i}" for i in range(7)])]
    for name, role, *rep in (("hana", "hr"), ("root", "admin"), ("vera", "verifier"),
                             ("mgr", "manager", "Lead")):
        arch.add_staff(name, role, *rep, password=PASSWORD)
    server = ServerProcess(data).start()
    home = root / "laptop"
    enroll(data, home, server.url, "赵离")
    agent_cli(home, "sync")
    yield World(data, home, server, leaver, customers)
    server.stop()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def csrf_of(page: Page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


def test_hr_runs_a_departure_with_a_preview_and_reads_the_report(world: World,
                                                                 chromium: Browser) -> None:
    # The rep works offline: one visit waits in the laptop's outbox.
    (offline,) = log_visits(world.home, world.customers[:1], 1, "最后一次")
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, world.url, "hana")
    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="People and laptops").click()
    row = page.get_by_role("row").filter(has_text="赵离")
    assert "Active" in row.inner_text() and "7" in row.inner_text()
    assert_accessible(page)
    screenshot(page, "console-hr-people")

    page.goto(world.url + "/console/hr/departures")
    page.get_by_label("Rep who leaves").select_option(label="赵离 (7)")
    page.get_by_label("Their customers go to").select_option("team")
    page.get_by_label("Reason").fill("resigned")
    before = archive(world.data).audit_count()
    page.get_by_role("button", name="Preview").click()
    summary = page.locator("#preview-summary").inner_text()
    assert re.fullmatch(r"7 customers: 3 to (李伟|张敏|王芳), 2 to \S+, 2 to \S+", summary), summary
    assert archive(world.data).audit_count() == before  # the preview wrote nothing
    assert archive(world.data).resolve_rep("赵离")["active"] == 1
    assert_accessible(page)
    screenshot(page, "console-hr-departure-preview")

    page.get_by_role("button", name="Confirm the departure").click()
    assert page.url.endswith(f"/console/hr/departures/{world.leaver}?done=recorded")
    assert page.get_by_role("status").inner_text() == "Departure recorded."
    assert "none yet" in page.locator("#devices").inner_text()

    # The laptop's next sync: its offline visit comes home sealed, then it wipes.
    proc = agent_cli(world.home, "sync", check=False)
    assert proc.returncode == 3 and "wiped" in proc.stderr

    page.reload()
    devices = page.locator("#devices").inner_text()
    assert "Wiped" in devices and "none yet" not in devices
    owners = page.locator("#customers tbody tr").all_inner_texts()
    assert len(owners) == 7 and all(any(n in o for n in TEAM) for o in owners)
    assert page.locator("#held").inner_text() == "1"
    assert page.locator("#visits-kept").inner_text() == "0"
    held = archive(world.data).quarantine()
    assert [h["entity_id"] for h in held] == [offline["id"]]
    assert_accessible(page)
    screenshot(page, "console-hr-departure-report")
    page.emulate_media(media="print")  # the printable report: no menus, no forms
    assert not page.get_by_role("navigation", name="Main menu").is_visible()
    page.emulate_media(media="screen")

    # In Chinese, the report reads in the domain's words.
    page.get_by_role("link", name="简体中文").click()
    assert page.get_by_role("heading", level=1).inner_text() == "离职报告：赵离"
    assert "已擦除" in page.locator("#devices").inner_text()
    assert_accessible(page)
    screenshot(page, "console-hr-departure-report-zh")
    page.get_by_role("link", name="English").click()

    # HR tokens: shown once, then only the name.
    page.goto(world.url + "/console/hr/tokens")
    page.get_by_label("System using it").fill("erp")
    page.get_by_role("button", name="Issue a token").click()
    token = page.locator("code.secret").inner_text()
    assert token.startswith("fvhr_") and archive(world.data).check_hr_token(token) == "erp"
    assert_accessible(page)
    screenshot(page, "console-hr-tokens")
    page.goto(world.url + "/console/hr/tokens")
    assert token not in page.content()
    page.get_by_role("button", name="Revoke erp").click()
    assert archive(world.data).check_hr_token(token) is None
    assert guard.urls == []
    ctx.close()


def test_other_roles_get_403_on_hr_pages_and_forms(world: World, chromium: Browser) -> None:
    ctx, _guard = new_context(chromium)
    page = ctx.new_page()
    for name in ("vera", "mgr"):
        sign_in(page, world.url, name)
        menu = page.get_by_role("navigation", name="Main menu")
        assert menu.get_by_role("link", name="Departures").count() == 0
        for path in ("/console/hr/people", "/console/hr/departures", "/console/hr/tokens",
                     f"/console/hr/departures/{world.leaver}"):
            assert page.goto(world.url + path).status == 403, (name, path)  # type: ignore[union-attr]
        assert_accessible(page)
        # A forged form: this role's own valid session and CSRF token, HR's form.
        page.goto(world.url + "/console/")
        token = csrf_of(page)
        for path, form in (("/console/hr/departures",
                            {"rep": "李伟", "reassign_to": "pool", "reason": "forged"}),
                           ("/console/hr/departures/preview",
                            {"rep": "李伟", "mode": "pool", "reason": "forged"}),
                           ("/console/hr/tokens", {"token_name": "forged"})):
            answer = page.request.post(world.url + path, form={"csrf_token": token, **form})
            assert answer.status == 403, (name, path)
        page.get_by_role("button", name="Sign out").click()
    assert archive(world.data).resolve_rep("李伟")["active"] == 1
    assert [t["name"] for t in archive(world.data).hr_tokens("root")] in ([], ["erp"])
    # HR's own session without the CSRF token is refused too.
    sign_in(page, world.url, "hana")
    answer = page.request.post(world.url + "/console/hr/departures",
                               form={"rep": "李伟", "reassign_to": "pool", "reason": "no token"})
    assert answer.status == 403
    assert archive(world.data).resolve_rep("李伟")["active"] == 1
    ctx.close()
