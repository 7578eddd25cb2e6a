"""The screens a rep sees when the vault cannot be opened: blocked (offline past the
lease's block deadline) and wiped (past the wipe deadline), judged by the laptop's
clock: the UI app in process with a ManualClock, served by uvicorn on 127.0.0.1 and
seen through chromium (axe-clean, screenshotted, nothing leaves loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, expect

from agent.ui.app import create_app
from agent.ui.context import UI
from agent.ui.serve import bind
from schema.clock import ManualClock, parse_iso

from . import harness
from .browser import assert_accessible, new_context, screenshot
from .harness import ThreadedServer


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ThreadedServer]]:
    root = tmp_path_factory.mktemp("uiscreens")
    server = ThreadedServer(root / "srv").start()
    try:
        rep = server.archive.add_rep("李伟")["id"]
        harness.lib_enroll(root / "srv", root / "home", server.url, rep)
        yield root / "home", server
    finally:
        server.stop()


def serve_at(home: Path, clock: ManualClock) -> tuple[UI, uvicorn.Server, threading.Thread]:
    from agent.home import AgentConfig

    config = AgentConfig.load(home)
    assert config is not None
    sock = bind(0)
    ui = UI(home, config, sock.getsockname()[1], clock=clock)
    server = uvicorn.Server(uvicorn.Config(create_app(ui), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(400):  # bounded: until uvicorn listens
        if server.started:
            break
        time.sleep(0.02)
    return ui, server, thread


@pytest.mark.parametrize(("when", "h1", "name"), [
    ("block_at", "访问已锁定", "blocked"), ("wipe_at", "本机数据已清除", "wiped-deadline")])
def test_past_a_lease_deadline_the_ui_says_what_happened_and_what_to_do(
        laptop: tuple[Path, ThreadedServer], chromium: Browser, when: str, h1: str,
        name: str) -> None:
    from agent import keystore
    from schema.clock import SystemClock

    home, _ = laptop
    lease = keystore.status(home, SystemClock()).lease
    clock = ManualClock(parse_iso(lease[when]) + timedelta(minutes=1))
    ui, server, thread = serve_at(home, clock)
    ctx, guard = new_context(chromium, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(ui.launch_url)
        expect(page.locator("h1")).to_have_text(h1)
        page.goto(f"http://127.0.0.1:{ui.port}/customers")
        expect(page.locator("h1")).to_have_text(h1)  # no page of data, whichever is asked
        if name == "blocked":
            expect(page.locator("main form[action='/sync/now'] button")).to_be_visible()
            expect(page.locator("main")).to_contain_text("本机离线时间超过了公司允许的期限")
        if name == "wiped-deadline":  # enforced as opening the vault would: destroyed
            assert not (home / "vault.db").exists() and not (home / "keyring.json").exists()
        assert_accessible(page)
        screenshot(page, name)
        assert guard.urls == []
    finally:
        ctx.close()
        server.should_exit = True
        thread.join(timeout=10)
