"""A real browser for the tests of the web faces: Debian's chromium driven by
Playwright, an axe-core check, screenshots kept as artefacts, and a guard that records
(and blocks) any request a page makes outside 127.0.0.1."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Screenshots land here (CI keeps the folder as an artefact); override with the env var.
ARTIFACTS = Path(os.environ.get("FIELDVAULT_ARTIFACTS", Path(__file__).parent / "artifacts"))
SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # CI installs it (scripts/test): never skip
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/test, which installs it", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


class Outside:
    """Requests a page tried to make outside loopback (each one aborted)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:", "about:")) or host in {"127.0.0.1", "localhost"}:
            route.continue_()
            return
        self.urls.append(route.request.url)
        route.abort()


def new_context(browser: Browser, locale: str = "en-GB", **kw: Any) -> tuple[BrowserContext, Outside]:
    """A fresh browser profile whose every request is checked by an `Outside` guard."""
    ctx = browser.new_context(locale=locale, **kw)
    guard = Outside()
    ctx.route("**/*", guard)
    return ctx, guard


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    result = Axe().run(page)
    return [v for v in result.response["violations"] if v.get("impact") in SERIOUS]


def assert_accessible(page: Page) -> None:
    found = axe_violations(page)
    assert not found, "axe: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in found)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact; returns its path."""
    path = ARTIFACTS / "screens" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def png(width: int, height: int) -> bytes:
    """A real (tiny) PNG, so the page's thumbnail really decodes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
