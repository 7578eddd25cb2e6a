"""An admin at work in the console, in a real browser against a real `fieldvault-server
serve` and a real rep's laptop: a departed rep's final-flush visit, held in quarantine,
accepted and then in the customer's history; an enrollment code shown once with its QR
code, which a second laptop enrolls with; a pool policy change previewed then applied;
the audit log filtered and its chain verified; system health. Other roles get 403 pages,
a forged form post with another role's valid session included."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

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


@dataclass
class World:
    data: Path
    root: Path
    server: ServerProcess
    customers: list[dict]
    held_visit: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console-admin")
    data = root / "server"
    init_server(data)
    # Accounts, reps and cards through the archive's library (CLI start-up costs seconds
    # each); the laptops are the real agent CLI.
    arch = archive(data)
    arch.add_rep("Lead")
    arch.add_rep("李伟", "Lead")
    arch.add_rep("赵离", "Lead")
    customers = add_customers(data, "赵离", ["华东物流", "南方机械"])
    for name, role, *rep in (("root", "admin"), ("hana", "hr"), ("mgr", "manager", "Lead")):
        arch.add_staff(name, role, *rep, password=PASSWORD)
    server = ServerProcess(data).start()
    home = root / "laptop"
    enroll(data, home, server.url, "赵离")
    agent_cli(home, "sync")
    # Offline, the rep logs a visit; meanwhile they leave. The laptop's next sync
    # flushes it into quarantine and wipes.
    (visit,) = log_visits(home, [customers[0]["id"]], 1, "离职前")
    arch.revoke("赵离", "resigned", "李伟")
    assert agent_cli(home, "sync", check=False).returncode == 3
    yield World(data, root, server, customers, visit["id"])
    server.stop()


def sign_in(page: Page, url: str, name: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main menu")).to_be_visible()  # signed in


def test_an_admin_reviews_enrolls_sets_policy_and_audits(world: World, chromium: Browser) -> None:
    ctx, guard = new_context(chromium)
    page = ctx.new_page()
    sign_in(page, world.url, "root")

    # Quarantine: the final-flush visit, accepted, is in the customer's history.
    (held,) = archive(world.data).quarantine()
    assert held["entity_id"] == world.held_visit
    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="Quarantine and conflicts").click()
    assert "final flush" in page.locator(f"#held-{held['id']} + dl").inner_text()
    assert_accessible(page)
    screenshot(page, "console-admin-review")
    page.get_by_role("button", name=f"Accept operation {held['id']}").click()
    assert page.get_by_role("status").inner_text().startswith("Accepted")
    assert "Nothing is held for review." in page.content()
    page.goto(world.url + f"/console/customers/{world.customers[0]['card_no']}")
    assert "离职前 visit #0" in page.locator("main").inner_text()
    assert archive(world.data).get_visit(world.held_visit)["rep_id"] == held["rep_id"]

    # An enrollment code, shown once with its QR code; a second laptop enrolls with it.
    page.goto(world.url + "/console/admin/enroll")
    page.get_by_label("Rep").select_option(label="李伟")
    page.get_by_role("button", name="Create a code").click()
    code = page.locator("#code").inner_text()
    assert page.locator("#command").inner_text() == (
        f"fieldvault enroll --server {world.url} --code {code}")
    assert page.locator("figure.qr svg path").count() == 1
    assert_accessible(page)
    screenshot(page, "console-admin-enroll")
    page.goto(world.url + "/console/admin/enroll")
    assert code not in page.content()
    enrolled = agent_cli(world.root / "second", "enroll", "--server", world.url, "--code", code)
    assert enrolled["rep_id"] == archive(world.data).resolve_rep("李伟")["id"]

    # A pool policy change: its effect previewed (nothing written), then applied.
    page.goto(world.url + "/console/admin/policies")
    page.get_by_label("Grade C: days without a visit before returning to the pool").fill("2")
    page.get_by_label("Warn the owner this many days before").fill("2")
    page.locator("#preview-pool").click()
    assert page.locator("#warned-new").inner_text() == "2"  # both cards: due within 2 days
    assert archive(world.data).pool_policy()["return_days_c"] == 90
    assert_accessible(page)
    screenshot(page, "console-admin-policy-preview")
    page.get_by_role("button", name="Apply this change").click()
    assert page.get_by_role("status").inner_text() == "Pool rules saved."
    assert archive(world.data).pool_policy()["return_days_c"] == 2

    # The audit log: filtered by an action prefix, and its chain verified.
    page.goto(world.url + "/console/admin/audit")
    page.get_by_label("Action starts with").fill("quarantine.")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#audit tbody tr").all_inner_texts()
    assert len(rows) == 1 and "quarantine.accept" in rows[0] and "staff:root" in rows[0]
    page.get_by_role("button", name="Verify chain").click()
    assert page.locator("#verdict").inner_text().startswith("The chain is intact")
    assert_accessible(page)
    screenshot(page, "console-admin-audit")

    # Staff accounts: one added as a verifier, then disabled.
    page.goto(world.url + "/console/admin/staff")
    page.get_by_label("User name").fill("小李")
    page.get_by_label("Role").select_option("verifier")
    page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Add the account").click()
    assert page.get_by_role("status").inner_text() == "Account added."
    assert "Verifier" in page.get_by_role("row").filter(has_text="小李").inner_text()
    assert_accessible(page)
    screenshot(page, "console-admin-staff")
    page.get_by_role("button", name="Disable 小李").click()
    assert "Disabled" in page.get_by_role("row").filter(has_text="小李").inner_text()
    assert any(a["name"] == "小李" and a["disabled_at"] for a in archive(world.data).list_staff())

    page.goto(world.url + "/console/admin/health")
    assert page.locator("#replication").inner_text() in ("Healthy", "Needs attention")
    assert_accessible(page)
    screenshot(page, "console-admin-health")
    assert guard.urls == []
    ctx.close()


def test_other_roles_get_403_on_admin_pages_and_forms(world: World, chromium: Browser) -> None:
    ctx, _guard = new_context(chromium)
    page = ctx.new_page()
    for name in ("hana", "mgr"):
        sign_in(page, world.url, name)
        for path in ("/console/admin/review", "/console/admin/enroll", "/console/admin/policies",
                     "/console/admin/audit", "/console/admin/health", "/console/admin/staff"):
            assert page.goto(world.url + path).status == 403, (name, path)  # type: ignore[union-attr]
        assert_accessible(page)
        page.goto(world.url + "/console/")
        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        for path, form in (("/console/admin/enroll", {"rep": "李伟"}),
                           ("/console/admin/policies/pool", {"return_days_a": "1"}),
                           ("/console/admin/review/held/1/reject", {"reason": "forged"}),
                           ("/console/admin/staff", {"user": "mole", "role": "admin",
                                                     "password": PASSWORD})):
            answer = page.request.post(world.url + path, form={"csrf_token": token, **form})
            assert answer.status == 403, (name, path)
        page.get_by_role("button", name="Sign out").click()
    assert archive(world.data).pool_policy()["return_days_a"] != 1
    assert "mole" not in {a["name"] for a in archive(world.data).list_staff()}
    ctx.close()
