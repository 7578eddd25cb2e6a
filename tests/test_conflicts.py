"""Conflicts: customer cards edited by the rep (offline, on the agent) and by the office
(on the server), and visits that only their author may edit until approved.

The behaviour under test goes through the CLIs (`fieldvault customer edit`, `fieldvault
sync`, `fieldvault-server customer edit`, `fieldvault-server conflicts`, `fieldvault
status`); set-up and inspection use the libraries. A last, in-process property test
drives the archive with arbitrary interleavings of office and rep edits.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.home import AgentConfig
from agent.store import StoreError
from agent.sync import SyncReport, open_transport, push
from schema.models import CustomerCreate, CustomerPatch, PushRequest, VisitCreate, VisitPatch
from server.rules import Archive, init_archive

from . import harness
from .harness import ServerProcess, agent_cli, new_id, op, server_cli


@dataclass
class Live:
    server: ServerProcess
    data: Path
    archive: Archive
    rep_a: str
    rep_b: str
    home_a: Path
    home_b: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("conflicts")
    data = root / "srv"
    archive = init_archive(data)
    rep_a = archive.add_rep("陈静 Chen Jing")["id"]
    rep_b = archive.add_rep("Tom Baker")["id"]
    server = ServerProcess(data).start()
    try:
        harness.lib_enroll(data, root / "agent-a", server.url, rep_a)
        harness.lib_enroll(data, root / "agent-b", server.url, rep_b)
        yield Live(server, data, archive, rep_a, rep_b, root / "agent-a", root / "agent-b")
    finally:
        server.stop()


def new_customer(live: Live, owner: str, **fields: Any) -> dict[str, Any]:
    card = CustomerCreate(name=fields.pop("name", f"Customer {new_id()[:6]}"), **fields)
    return live.archive.add_customer(card, owner)


def card(live: Live, customer_id: str) -> dict[str, Any]:
    return live.archive.get_customer(customer_id)


def device_card(home: Path, customer_id: str) -> dict[str, Any]:
    customers, _ = harness.device_rows(home)
    return customers[customer_id]


def conflicts_of(live: Live, customer_id: str) -> list[dict[str, Any]]:
    return [c for c in live.archive.conflicts() if c["customer_id"] == customer_id]


def sync_results(home: Path) -> dict[str, int]:
    report = agent_cli(home, "sync")
    return report["results"]  # type: ignore[no-any-return]


# --- customer cards -----------------------------------------------------------------

def test_same_field_changed_on_both_sides_keeps_server_value_and_records_reps(
    live: Live,
) -> None:
    cust = new_customer(live, live.rep_a, phone="021-6000 0001", notes="prefers mornings")
    harness.lib_sync(live.home_a)
    # offline on the laptop, the rep corrects the phone ...
    agent_cli(live.home_a, "customer", "edit", cust["id"], "--phone", "021-6000 0002")
    # ... while the office corrects it differently on the server
    server_cli(live.data, "customer", "edit", cust["card_no"], "--phone", "021-6000 0003")

    assert sync_results(live.home_a) == {"conflict": 1}

    assert card(live, cust["id"])["phone"] == "021-6000 0003"  # the server's value stands
    listed = [c for c in server_cli(live.data, "conflicts") if c["customer_id"] == cust["id"]]
    assert len(listed) == 1, listed
    (conflict,) = listed
    assert conflict["field"] == "phone"
    assert conflict["server_value"] == "021-6000 0003"
    assert conflict["rep_value"] == "021-6000 0002"  # nothing the rep typed is lost
    assert conflict["rep_id"] == live.rep_a and conflict["card_no"] == cust["card_no"]
    # the laptop now shows what the archive holds, and nothing is left pending
    assert device_card(live.home_a, cust["id"])["phone"] == "021-6000 0003"
    assert harness.outbox_counts(live.home_a)["pending"] == 0


def test_conflict_on_one_field_still_applies_the_reps_other_fields(live: Live) -> None:
    cust = new_customer(live, live.rep_a, grade="B")
    harness.lib_sync(live.home_a)
    with harness.open_store(live.home_a) as store:
        store.edit_customer(cust["id"], CustomerPatch(grade="A", decision_maker="刘总 (GM)"))
    live.archive.edit_customer(cust["id"], CustomerPatch(grade="C"), "office")

    assert harness.lib_sync(live.home_a).results == {"conflict": 1}
    after = card(live, cust["id"])
    assert (after["grade"], after["decision_maker"]) == ("C", "刘总 (GM)")
    assert [(c["field"], c["server_value"], c["rep_value"])
            for c in conflicts_of(live, cust["id"])] == [("grade", "C", "A")]


def test_different_fields_changed_on_both_sides_are_merged(live: Live) -> None:
    cust = new_customer(live, live.rep_a, phone="0571-8800 1000")
    harness.lib_sync(live.home_a)
    agent_cli(live.home_a, "customer", "edit", cust["id"], "--notes", "wants quarterly review")
    server_cli(live.data, "customer", "edit", cust["id"], "--phone", "0571-8800 2000")

    assert sync_results(live.home_a) == {"merged": 1}
    after = card(live, cust["id"])
    assert after["notes"] == "wants quarterly review"
    assert after["phone"] == "0571-8800 2000"
    assert after["rev"] == cust["rev"] + 2
    assert conflicts_of(live, cust["id"]) == []
    on_laptop = device_card(live.home_a, cust["id"])
    assert (on_laptop["notes"], on_laptop["phone"]) == (after["notes"], after["phone"])


def test_rep_editing_a_field_twice_offline_is_not_a_conflict_with_itself(live: Live) -> None:
    cust = new_customer(live, live.rep_a, needs="")
    harness.lib_sync(live.home_a)
    agent_cli(live.home_a, "customer", "edit", cust["id"], "--needs", "200 units")
    agent_cli(live.home_a, "customer", "edit", cust["id"], "--needs", "250 units, by May")
    # the office touching another field meanwhile does not change that
    live.archive.edit_customer(cust["id"], CustomerPatch(industry="retail"), "office")

    results = sync_results(live.home_a)
    assert "conflict" not in results and sum(results.values()) == 2, results
    after = card(live, cust["id"])
    assert (after["needs"], after["industry"]) == ("250 units, by May", "retail")
    assert conflicts_of(live, cust["id"]) == []


def test_rep_value_equal_to_the_office_value_is_no_conflict(live: Live) -> None:
    cust = new_customer(live, live.rep_a)
    harness.lib_sync(live.home_a)
    with harness.open_store(live.home_a) as store:
        store.edit_customer(cust["id"], CustomerPatch(address="88 Nanjing Rd"))
    live.archive.edit_customer(cust["id"], CustomerPatch(address="88 Nanjing Rd"), "office")
    report = harness.lib_sync(live.home_a)
    assert "conflict" not in report.results
    assert conflicts_of(live, cust["id"]) == []


@pytest.mark.parametrize("rep_edit", [{"notes": "rep note"}, {"phone": "021-7000 0009"}])
def test_lost_pull_does_not_let_a_later_edit_overwrite_the_office(
    live: Live, rep_edit: dict[str, str]
) -> None:
    """The rep's push is answered (merged or conflict) but the pull after it is lost;
    offline again, the rep changes the phone the office changed meanwhile. The laptop
    never saw the office's value, so this is a conflict, not an overwrite."""
    cust = new_customer(live, live.rep_a, phone="021-7000 0001")
    harness.lib_sync(live.home_a)
    with harness.open_store(live.home_a) as store:
        store.edit_customer(cust["id"], CustomerPatch(**rep_edit))
    live.archive.edit_customer(cust["id"], CustomerPatch(phone="021-7000 0002"), "office")
    config = AgentConfig.load(live.home_a)
    assert config is not None
    with harness.open_store(live.home_a) as store:
        transport = open_transport(live.home_a, config)
        try:
            report = SyncReport()
            push(store, transport, report)  # ... and the connection drops before the pull
        finally:
            transport.close()
        assert set(report.results) <= {"merged", "conflict"}, report.results
        store.edit_customer(cust["id"], CustomerPatch(phone="021-7000 0003"))

    assert harness.lib_sync(live.home_a).results == {"conflict": 1}
    assert card(live, cust["id"])["phone"] == "021-7000 0002"
    assert ("phone", "021-7000 0002", "021-7000 0003") in [
        (c["field"], c["server_value"], c["rep_value"]) for c in conflicts_of(live, cust["id"])]
    assert device_card(live.home_a, cust["id"])["phone"] == "021-7000 0002"


# --- visits ----------------------------------------------------------------------------

def _log_visit(home: Path, customer_id: str, summary: str) -> dict[str, Any]:
    with harness.open_store(home) as store:
        return store.log_visit(VisitCreate(
            customer_id=customer_id, purpose="service", summary=summary,
            started_at=datetime.now(UTC)))  # not before the card existed


def test_only_the_author_can_edit_a_visit(live: Live) -> None:
    cust = new_customer(live, live.rep_a)
    harness.lib_sync(live.home_a)
    visit = _log_visit(live.home_a, cust["id"], "Installed the new line")
    harness.lib_sync(live.home_a)
    # the customer moves to B, whose laptop receives A's visit with the history
    live.archive.assign(cust["id"], live.rep_b, "rotation", "admin")
    harness.lib_sync(live.home_b)
    _, visits_b = harness.device_rows(live.home_b)
    assert visits_b[visit["id"]]["rep_id"] == live.rep_a

    proc = agent_cli(live.home_b, "visit", "edit", visit["id"], "--summary", "B rewrites it",
                     check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: only the author can change a visit record"
    assert harness.outbox_counts(live.home_b)["pending"] == 0

    # and a hand-made push from B's laptop is refused by the server too
    config = AgentConfig.load(live.home_b)
    assert config is not None
    transport = open_transport(live.home_b, config)
    try:
        edit = op("visit.update", visit["id"], {"summary": "B rewrites it"}, base_rev=1)
        answer = transport.request("POST", "/v1/push", payload=orjson.dumps({"ops": [edit]}))
    finally:
        transport.close()
    (result,) = answer["results"]
    assert result["status"] == "rejected" and "author" in result["reason"]
    (archived,) = live.archive.list_visits(customer=cust["id"])
    assert archived["summary"] == "Installed the new line" and archived["rev"] == 1


def test_the_laptop_refuses_to_unsubmit_a_visit(live: Live) -> None:
    cust = new_customer(live, live.rep_a)
    harness.lib_sync(live.home_a)
    visit = _log_visit(live.home_a, cust["id"], "Demo of the new model")
    with harness.open_store(live.home_a) as store:
        with pytest.raises(StoreError, match="cannot go back to draft"):
            store.edit_visit(visit["id"], VisitPatch(status="draft"))
        assert store.get_visit(visit["id"])["status"] == "submitted"
        assert len(store.pending_ops(100)) == 1  # only the visit itself


def test_edit_after_approval_is_rejected_and_stays_visible(live: Live) -> None:
    cust = new_customer(live, live.rep_a)
    harness.lib_sync(live.home_a)
    visit = _log_visit(live.home_a, cust["id"], "Collected the March invoice")
    harness.lib_sync(live.home_a)
    # the supervisor approves it (through the archive: the CLI is tested in test_review_e2e)
    live.archive.add_staff("supervisor", "admin")
    live.archive.approve_visit(visit["id"], by="supervisor")
    # the laptop has not heard yet, so the rep's correction is taken locally ...
    agent_cli(live.home_a, "visit", "edit", visit["id"], "--summary", "Collected 80% only")

    # ... and refused by the server
    report = agent_cli(live.home_a, "sync")
    assert report["results"] == {"rejected": 1} and report["needs_attention"] >= 1
    archived = live.archive.list_visits(customer=cust["id"])[0]
    assert (archived["summary"], archived["status"]) == ("Collected the March invoice",
                                                          "approved")

    status = agent_cli(live.home_a, "status")
    (item,) = [a for a in status["needs_attention"] if a["entity_id"] == visit["id"]]
    assert item["kind"] == "visit.update" and item["state"] == "rejected"
    assert "approved" in item["reason"]
    assert item["data"] == {"summary": "Collected 80% only"}  # what the rep typed is kept
    # a later sync neither resends it nor drops it
    assert "rejected" not in harness.lib_sync(live.home_a).results
    with harness.open_store(live.home_a) as store:
        assert [a["op_id"] for a in store.needs_attention()
                if a["entity_id"] == visit["id"]] == [item["op_id"]]


# --- property: no interleaving of office and rep edits loses what the rep typed ----------

FIELDS = ("phone", "notes", "grade", "industry")
VALUES = {
    "phone": st.sampled_from(["021-1", "021-2", "021-3"]),
    "notes": st.sampled_from(["a", "b", "c"]),
    "grade": st.sampled_from(["A", "B", "C"]),
    "industry": st.sampled_from(["retail", "food"]),
}
edit = st.fixed_dictionaries({}, optional={f: VALUES[f] for f in FIELDS}).filter(bool)
# each step: ("office", changes) applied on the server now, or ("rep", changes) queued
# offline on the laptop with the base revision the laptop last pulled
steps = st.lists(st.tuples(st.sampled_from(["office", "rep"]), edit), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def scratch_archive() -> Iterator[tuple[Archive, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = init_archive(Path(tmp) / "srv")
        rep = archive.add_rep("Rep P")["id"]
        code, _ = archive.create_enroll_code(rep, timedelta(hours=1))
        device = archive.enroll(code, "p", b"\1" * 32, b"\2" * 32)
        yield archive, device


@settings(max_examples=60, deadline=None)
@given(steps=steps)
def test_merge_never_loses_a_reps_value(scratch_archive: tuple[Archive, Any],
                                        steps: list[tuple[str, dict[str, str]]]) -> None:
    archive, device = scratch_archive
    cust = archive.add_customer(CustomerCreate(name=f"Prop Co {new_id()[:8]}"), device.rep_id)
    card = {f: cust[f] for f in FIELDS}
    office_changed: set[str] = set()
    ops = []
    for who, changes in steps:
        if who == "office":
            archive.edit_customer(cust["id"], CustomerPatch(**changes), "office")
            office_changed |= {f for f, v in changes.items() if card[f] != v}
            card.update(changes)
        else:  # all queued offline against the revision the laptop last pulled
            ops.append(op("customer.update", cust["id"], changes, base_rev=cust["rev"]))
    if not ops:
        return
    results = archive.push(device, PushRequest.model_validate({"ops": ops}).ops)
    final = archive.get_customer(cust["id"])
    recorded = {(c["op_id"], c["field"]): c for c in archive.conflicts()
                if c["customer_id"] == cust["id"]}
    for o, res in zip(ops, results, strict=True):
        assert res.status in ("accepted", "merged", "conflict"), res
        fields_lost = set()
        for name, value in o["data"].items():
            conflict = recorded.get((o["op_id"], name))
            if name in office_changed and value != card[name]:
                # lost to the office's newer value, but recorded with both values
                assert conflict is not None, (name, steps)
                assert (conflict["server_value"], conflict["rep_value"]) == (card[name], value)
                fields_lost.add(name)
            else:
                assert conflict is None, (name, steps)
        assert set(res.conflicts) == fields_lost
        assert (res.status == "conflict") == bool(fields_lost)
    # the office's values stand where it changed a field; elsewhere the rep's last value
    last_rep = {n: v for o in ops for n, v in o["data"].items()}
    for name in FIELDS:
        expected = card[name] if name in office_changed else last_rep.get(name, card[name])
        assert final[name] == expected, (name, steps)
