"""A visit's start time must fall where its author could have made the visit.

Issue 8 finding 7: after a reassignment the former owner's laptop moved an old
visit's `started_at` before the card existed, and the current owner could date
a visit before the card existed; both were accepted. The rules now:

- a visit counts inside its author's ownership window of the customer, judged
  at the visit's own start time (a visit made offline while they owned the
  customer still counts after a reassignment: the pool clock is fair to
  offline work);
- never before the card existed;
- never later than the server's now plus the signed-request clock skew (a visit
  dated ahead would keep the customer out of the pool);
- an edit that moves `started_at` is judged at the NEW time, like a new visit.

A violation is quarantined (held for review with its full payload, nothing
lost), as a visit to a customer the rep did not own always was, and as an edit
of a customer no longer assigned to the rep is.

The main case runs real processes (`fieldvault-server serve`, the `fieldvault`
and `fieldvault-server` CLIs); the variants run in process on a manual clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from schema.clock import ManualClock, iso
from schema.models import CustomerCreate, PushRequest
from schema.signing import MAX_CLOCK_SKEW_S
from server.archive import Device
from server.rules import init_archive

from . import harness
from .harness import ServerProcess, agent_cli, customer_create, new_id, op, server_cli, visit_create


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.mark.slow
def test_former_owner_cannot_move_a_visit_out_of_their_window(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data
    arch = harness.archive(data)
    rep_a, rep_b = arch.add_rep("Zhao Lei")["id"], arch.add_rep("Qian Yu")["id"]
    (customer,) = harness.add_customers(data, rep_a, ["苏州工业园 Precision Ltd"])
    home_a = tmp_path / "a"
    harness.lib_enroll(data, home_a, server.url, rep_a)
    agent_cli(home_a, "sync")
    old = agent_cli(home_a, "visit", "log", "--customer", customer["card_no"],
                    "--purpose", "order", "--summary", "First order, 50 units")
    assert agent_cli(home_a, "sync")["results"] == {"accepted": 1}

    server_cli(data, "customer", "assign", customer["card_no"], rep_b, "--reason", "rotation")
    moved_at = _parse(arch.ownership_history(customer["id"])[-1]["at"])
    card_made = _parse(customer["created_at"])

    # A's laptop has not synced since: it still holds the card and the old visit.
    in_window = card_made + (moved_at - card_made) / 2
    offline = agent_cli(home_a, "visit", "log", "--customer", customer["card_no"],
                        "--purpose", "service", "--summary", "Made offline while it was mine",
                        "--started-at", in_window.isoformat())
    before_card = card_made - timedelta(days=30)
    agent_cli(home_a, "visit", "edit", old["id"], "--started-at", before_card.isoformat())
    report = agent_cli(home_a, "sync")

    # the offline visit inside A's window counts; the rewrite is held for review
    assert report["results"] == {"accepted": 1, "quarantined": 1}, report
    rows = {r["id"]: r for r in harness.archive(data).list_visits(customer=customer["id"])}
    assert set(rows) == {old["id"], offline["id"]}
    assert rows[old["id"]]["started_at"] == old["started_at"] and rows[old["id"]]["rev"] == 1
    assert rows[offline["id"]]["rep_id"] == rep_a
    held = [q for q in server_cli(data, "quarantine") if q["rep_id"] == rep_a]
    assert [(q["entity_id"], q["kind"]) for q in held] == [(old["id"], "visit.update")]
    assert "before the customer's card existed" in held[0]["reason"]
    assert _parse(held[0]["payload"]["data"]["started_at"]) == before_card  # nothing lost


# --- in process, on a manual clock ------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class World:
    """An in-process app on a manual clock: the card is made at T0 and owned by A,
    then moved to B at T0 + 10 days; the server's now is T0 + 20 days."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock(T0)
        self.archive = init_archive(tmp_path / "srv", self.clock)
        self.a = self.device(self.archive.add_rep("Rep A")["id"])
        self.b = self.device(self.archive.add_rep("Rep B")["id"])
        self.card = self.archive.add_customer(CustomerCreate(name="Window Co"), self.a.rep_id)
        self.clock.advance(timedelta(days=1))
        self.visit = visit_create(self.card["id"], started_at=self.at(days=1))
        assert self.status(self.a, self.visit) == "accepted"
        self.clock.advance(timedelta(days=9))
        self.archive.assign(self.card["id"], self.b.rep_id, "rotation", "admin")
        self.clock.advance(timedelta(days=10))

    def device(self, rep: str) -> Device:
        code, _ = self.archive.create_enroll_code(rep, timedelta(hours=1))
        return self.archive.enroll(code, "laptop", new_id()[:32].encode(), new_id()[:32].encode())

    def at(self, **delta: float) -> str:
        return iso(T0 + timedelta(**delta))

    def push(self, device: Device, *ops: dict[str, Any]) -> list[dict[str, Any]]:
        """What the push route does after checking the signature: parse, then apply."""
        parsed = PushRequest.model_validate_json(orjson.dumps({"ops": list(ops)})).ops
        return [r.model_dump(mode="json") for r in self.archive.push(device, parsed)]

    def status(self, device: Device, one: dict[str, Any]) -> str:
        return str(self.push(device, one)[0]["status"])

    def move(self, started_at: str) -> dict[str, Any]:
        return op("visit.update", self.visit["entity_id"], {"started_at": started_at},
                  base_rev=1)

    def archived_start(self) -> str:
        (row,) = self.archive.list_visits(customer=self.card["id"])
        return str(row["started_at"])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.mark.parametrize(("label", "started", "expected"), [
    ("inside the former owner's window", {"days": 5}, "accepted"),
    ("before the card existed", {"days": -1}, "quarantined"),
    ("after the customer left them", {"days": 12}, "quarantined"),
    ("in the future", {"days": 40}, "quarantined"),
])
def test_an_edit_is_judged_at_the_new_start_time(
    world: World, label: str, started: dict[str, float], expected: str
) -> None:
    (result,) = world.push(world.a, world.move(world.at(**started)))
    assert result["status"] == expected, (label, result)
    want = world.at(**started) if expected == "accepted" else world.at(days=1)
    assert world.archived_start() == want
    held = [q["entity_id"] for q in world.archive.quarantine()]
    assert held == ([] if expected == "accepted" else [world.visit["entity_id"]])


@pytest.mark.parametrize(("label", "device", "started", "expected", "reason"), [
    ("former owner, offline visit inside their window", "a", {"days": 9}, "accepted", ""),
    ("former owner, before the card existed", "a", {"days": -3}, "quarantined", "card existed"),
    ("former owner, after the reassignment", "a", {"days": 11}, "quarantined", "not assigned"),
    ("current owner, before the card existed", "b", {"days": -3}, "quarantined", "card existed"),
    ("current owner, before they got it", "b", {"days": 5}, "quarantined", "not assigned"),
    ("current owner, now", "b", {"days": 20}, "accepted", ""),
    ("current owner, within the clock skew", "b",
     {"days": 20, "seconds": MAX_CLOCK_SKEW_S - 1}, "accepted", ""),
    ("current owner, beyond the clock skew", "b",
     {"days": 20, "seconds": MAX_CLOCK_SKEW_S + 60}, "quarantined", "future"),
    ("current owner, a year ahead", "b", {"days": 385}, "quarantined", "future"),
])
def test_a_new_visit_must_start_inside_its_authors_window(
    world: World, label: str, device: str, started: dict[str, float], expected: str,
    reason: str,
) -> None:
    visit = visit_create(world.card["id"], started_at=world.at(**started), ended_at=None)
    (result,) = world.push(getattr(world, device), visit)
    assert result["status"] == expected, (label, result)
    ids = {v["id"] for v in world.archive.list_visits(customer=world.card["id"])}
    assert (visit["entity_id"] in ids) == (expected == "accepted")
    if reason:
        (held,) = world.archive.quarantine()
        assert held["entity_id"] == visit["entity_id"] and reason in held["reason"], held


def test_a_card_made_offline_counts_from_its_own_creation(world: World) -> None:
    """A card made on the laptop is the rep's from the moment they made it, before
    the server heard of it: visits logged with it offline are accepted."""
    made = world.at(days=18)
    card = customer_create("Developed Offline Ltd")
    card["at"] = made
    visit = visit_create(card["entity_id"], started_at=world.at(days=18, hours=1), ended_at=None)
    early = visit_create(card["entity_id"], started_at=world.at(days=17), ended_at=None)
    results = world.push(world.b, card, visit, early)
    assert [r["status"] for r in results] == ["accepted", "accepted", "quarantined"]
    assert "card existed" in world.archive.quarantine()[0]["reason"]


def test_a_card_made_offline_counts_back_no_further_than_the_laptops_enrollment(
    world: World,
) -> None:
    """The card's creation time is the laptop's word: a card dated before the laptop
    was enrolled does not open a window for visits before the enrollment."""
    card = customer_create("Backdated Card Ltd")
    card["at"] = world.at(days=-30)  # the devices were enrolled at T0
    before = visit_create(card["entity_id"], started_at=world.at(days=-10), ended_at=None)
    after = visit_create(card["entity_id"], started_at=world.at(days=19), ended_at=None)
    results = world.push(world.b, card, before, after)
    assert [r["status"] for r in results] == ["accepted", "quarantined", "accepted"]
    (held,) = world.archive.quarantine()
    assert held["entity_id"] == before["entity_id"] and "not assigned" in held["reason"]


def test_the_visit_that_found_a_customer_may_come_shortly_before_its_card(
    world: World,
) -> None:
    """A rep visits a prospect first and makes the card right after: on a card made on
    their own laptop, a visit up to NEW_CARD_GRACE before the card counts; earlier
    than that, or on a card the office made, it is held for review."""
    made = world.at(days=18)
    card = customer_create("Found Today Ltd")
    card["at"] = made
    found = visit_create(card["entity_id"], started_at=world.at(days=18, hours=-2), ended_at=None)
    too_early = visit_create(card["entity_id"], started_at=world.at(days=18, hours=-13),
                             ended_at=None)
    office_card = world.archive.add_customer(CustomerCreate(name="Office Lead Ltd"), world.b.rep_id)
    world.clock.advance(timedelta(hours=3))
    before_office_card = visit_create(office_card["id"], started_at=iso(
        _parse(office_card["created_at"]) - timedelta(hours=2)), ended_at=None)
    results = world.push(world.b, card, found, too_early, before_office_card)
    assert [r["status"] for r in results] == ["accepted", "accepted", "quarantined",
                                              "quarantined"]
    held = {q["entity_id"]: q["reason"] for q in world.archive.quarantine()}
    assert set(held) == {too_early["entity_id"], before_office_card["entity_id"]}
    assert all("card existed" in reason for reason in held.values()), held
