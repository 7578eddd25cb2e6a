"""agent/service.py, the use cases the CLI and the local UI share: the sync with its
revocation, final flush and wipe; the day, visits and cards. A real server (uvicorn
in a thread, real HTTP on 127.0.0.1) and a real SQLCipher vault."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import service, wipe
from agent.home import AgentConfig
from agent.runner import Schedule
from agent.store import StoreError
from agent.transport import Offline
from schema.clock import ManualClock

from . import harness
from .harness import ThreadedServer


@dataclass
class Laptop:
    server: ThreadedServer
    home: Path
    config: AgentConfig
    customers: list[str]


@pytest.fixture()
def laptop(tmp_path: Path) -> Iterator[Laptop]:
    server = ThreadedServer(tmp_path / "srv").start()
    try:
        rep = server.archive.add_rep("李伟")["id"]
        config = harness.lib_enroll(tmp_path / "srv", tmp_path / "home", server.url, rep)
        ids = [c["id"] for c in harness.add_customers(tmp_path / "srv", rep,
                                                      ["上海华东贸易有限公司", "Acme Trading Ltd"])]
        yield Laptop(server, tmp_path / "home", config, ids)
    finally:
        server.stop()


def test_sync_reports_what_went_up_and_what_needs_the_rep(laptop: Laptop) -> None:
    first = service.sync(laptop.home, laptop.config)
    assert first.report.pulled_customers == 2
    with harness.open_store(laptop.home) as store:
        visit = service.log_visit(store, {"customer_id": laptop.customers[0], "purpose": "order",
                                          "summary": "订了两台", "outcome": "", "ended_at": None})
        assert visit["status"] == "submitted" and visit["outcome"] == ""
        with pytest.raises(StoreError):
            service.log_visit(store, {"customer_id": "nobody-here", "purpose": "order",
                                      "summary": "x"})
    outcome = service.sync(laptop.home, laptop.config)
    assert outcome.report.results == {"accepted": 1}
    assert outcome.as_dict()["needs_attention"] == 0
    assert laptop.server.archive.get_visit(visit["id"])["summary"] == "订了两台"


def test_offline_sync_fails_at_check_in_and_keeps_everything(laptop: Laptop) -> None:
    service.sync(laptop.home, laptop.config)
    with harness.open_store(laptop.home) as store:
        service.log_visit(store, {"customer_id": laptop.customers[1], "purpose": "service",
                                  "summary": "offline"})
    laptop.server.stop()
    with pytest.raises(service.SyncFailed) as failed:
        service.sync(laptop.home, laptop.config)
    assert failed.value.stage == "check-in" and isinstance(failed.value.cause, Offline)
    assert harness.outbox_counts(laptop.home)["pending"] == 1
    assert service.device_state(laptop.home) == "active"


def test_a_revoked_laptop_flushes_then_wipes_and_says_so(laptop: Laptop) -> None:
    service.sync(laptop.home, laptop.config)
    with harness.open_store(laptop.home) as store:
        visit = service.log_visit(store, {"customer_id": laptop.customers[0], "purpose": "service",
                                          "summary": "last words"})
    laptop.server.archive.revoke("李伟", "resigned")
    closed: list[bool] = []
    with pytest.raises(service.Revoked) as revoked:
        service.sync(laptop.home, laptop.config, before_wipe=lambda: closed.append(True))
    assert revoked.value.delivered and closed == [True]
    assert service.device_state(laptop.home) == "wiped"
    assert (laptop.home / wipe.WIPED_MARKER).exists()
    held = laptop.server.archive.quarantine()  # the final flush is held for review
    assert [q["entity_id"] for q in held] == [visit["id"]]


def test_the_day_lists_follow_ups_due_and_overdue(laptop: Laptop) -> None:
    service.sync(laptop.home, laptop.config)
    now = datetime.now(UTC)
    with harness.open_store(laptop.home) as store:
        service.log_visit(store, {"customer_id": laptop.customers[0], "purpose": "service",
                                  "summary": "a", "started_at": now - timedelta(days=3),
                                  "next_at": now - timedelta(days=2), "next_place": "办公室"})
        service.log_visit(store, {"customer_id": laptop.customers[1], "purpose": "service",
                                  "summary": "b", "started_at": now - timedelta(days=1),
                                  "next_at": now + timedelta(days=30)})
        day = service.today(store)
        assert [(f["name"], f["place"], f["overdue"]) for f in day["followups"]] == [
            ("上海华东贸易有限公司", "办公室", True)]
        assert [c["name"] for c in service.search_customers(store, "华东")] == ["上海华东贸易有限公司"]
        assert [c["name"] for c in service.search_customers(store, None, idle_days=2)] == [
            "上海华东贸易有限公司"]
        card = service.customer_card(store, laptop.customers[0])
        assert [v["summary"] for v in card["visits"]] == ["a"]


def test_the_background_schedule_debounces_saves_and_backs_off_offline() -> None:
    clock = ManualClock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    s = Schedule(clock, every=timedelta(minutes=5), debounce=timedelta(seconds=2),
                 retry_min=timedelta(seconds=10))
    assert s.wait_seconds() == 0  # once at start
    s.succeeded()
    assert s.wait_seconds() == 300
    s.saved()
    s.saved()
    assert s.wait_seconds() == 2  # a burst of saves: one sync, soon
    waits = []
    for _ in range(7):
        s.failed()
        waits.append(s.wait_seconds())
    assert waits == [10, 20, 40, 80, 160, 300, 300]  # doubling, never past the timer
    s.begin()
    s.saved()  # saved while that sync ran: the next one comes soon, not on the timer
    s.succeeded()
    assert s.wait_seconds() == 2
    clock.advance(timedelta(seconds=100))
    s.now_please()
    assert s.wait_seconds() == 0
    s.begin()
    s.succeeded()
    assert s.failures == 0 and s.wait_seconds() == 300
