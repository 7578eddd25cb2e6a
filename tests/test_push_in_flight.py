"""Two push batches of one device in flight at once (issue 10): the archive applies them
in the device's order whichever reaches it first; a batch whose predecessor never
comes is refused with 409 push_out_of_order and changes nothing; a push's nonce,
recorded in the transaction that applies it, still refuses a replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agent import sync as sync_mod
from agent.transport import ServerRefused
from schema.models import CustomerCreate, VisitPatch

from .harness import (
    Backend,
    ServerProcess,
    SignedDevice,
    add_rep,
    archive,
    assert_json_error,
    enroll_device,
    lib_enroll,
    log_visits,
    op,
    open_store,
    visit_create,
)

# Long enough for a batch to wait behind one on a loaded machine; short enough that the
# refusal test does not idle.
WAIT_S = 3


@pytest.fixture(scope="module")
def served(module_backend: Backend) -> Iterator[tuple[Path, ServerProcess, str, str]]:
    """On each backend; on PostgreSQL with its worker processes, where the batch behind
    may wait in another process than the one that applies the batch before it."""
    data = module_backend.data
    rep = add_rep(data, "In Flight Rep")
    card = archive(data).add_customer(CustomerCreate(name="双批 Trading"), rep)["id"]
    server = module_backend.server(env={"FIELDVAULT_PUSH_TURN_WAIT_S": str(WAIT_S)}).start()
    try:
        yield data, server, rep, card
    finally:
        server.stop()


@pytest.fixture
def device(served: tuple[Path, ServerProcess, str, str]) -> Iterator[SignedDevice]:
    data, server, rep, _ = served
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield enroll_device(client, archive(data), rep)


def stored(data: Path, visit_id: str) -> dict[str, Any] | None:
    """The visit as the archive holds it (its last revision), None if it has none."""
    history = archive(data).visit_history(visit_id)
    return history[-1]["snapshot"] if history else None


def body(ops: list[dict[str, Any]], after_seq: int = 0) -> bytes:
    return orjson.dumps({"ops": ops, "after_seq": after_seq})


def test_a_batch_waits_for_the_batch_sent_before_it(
        served: tuple[Path, ServerProcess, str, str], device: SignedDevice) -> None:
    data, _, _, card = served
    first = [visit_create(card)]
    vid = first[0]["entity_id"]
    # The second batch edits the visit the first creates: applied first, it would be
    # refused as an edit of an unknown visit.
    second = [op("visit.update", vid, {"summary": "corrected on the second batch"}, base_rev=1)]
    answered: dict[str, httpx.Response] = {}

    def send_second() -> None:
        answered["second"] = device.send("POST", "/v1/push",
                                         body(second, after_seq=first[-1]["seq"]))

    late = threading.Thread(target=send_second)
    late.start()
    time.sleep(0.5)  # the second batch is at the server, waiting for its turn
    answered["first"] = device.send("POST", "/v1/push", body(first))
    late.join(timeout=60)
    assert not late.is_alive()
    for name in ("first", "second"):
        assert answered[name].status_code == 200, answered[name].text
        assert [r["status"] for r in answered[name].json()["results"]] == ["accepted"]
    visit = stored(data, vid)
    assert visit is not None and (visit["rev"], visit["summary"]) == (2, "corrected on the second batch")


def test_a_batch_whose_turn_never_comes_is_refused_and_changes_nothing(
        served: tuple[Path, ServerProcess, str, str], device: SignedDevice) -> None:
    data, _, _, card = served
    ops = [visit_create(card)]
    t = time.monotonic()
    resp = device.send("POST", "/v1/push", body(ops, after_seq=ops[0]["seq"] + 1000))
    assert_json_error(resp, 409, "push_out_of_order")
    assert time.monotonic() - t >= WAIT_S * 0.9  # it waited for its turn first
    assert stored(data, ops[0]["entity_id"]) is None
    # Sent again in turn, it is applied as new: the refusal recorded nothing of it.
    again = device.send("POST", "/v1/push", body(ops))
    assert again.status_code == 200, again.text
    assert again.json()["results"][0]["status"] == "accepted"


def test_a_replayed_push_is_refused_and_applies_nothing_twice(
        served: tuple[Path, ServerProcess, str, str], device: SignedDevice) -> None:
    data, _, _, card = served
    ops = [visit_create(card)]
    raw = body(ops)
    headers = device.headers("POST", "/v1/push", raw)
    first = device.client.post("/v1/push", content=raw, headers=headers)
    assert first.status_code == 200, first.text
    replay = device.client.post("/v1/push", content=raw, headers=headers)
    assert_json_error(replay, 401, "unauthorized")
    assert "replayed" in replay.json()["message"]
    assert len(archive(data).visit_history(ops[0]["entity_id"])) == 1


def test_the_agent_pushes_batches_in_flight_in_order(
        served: tuple[Path, ServerProcess, str, str], tmp_path: Path) -> None:
    """The agent's own push, in batches of two with two in flight: the edits in later
    batches of visits created in earlier ones all land."""
    data, server, rep, card = served
    home = tmp_path / "home"
    config = lib_enroll(data, home, server.url, rep)
    with open_store(home) as store:
        sync_mod.sync(store, sync_mod.open_transport(home, config))
    made = log_visits(home, [card], 5, "offline")  # dated now: after the card, not held
    with open_store(home) as store:
        for n, visit in enumerate(made):
            store.edit_visit(visit["id"], VisitPatch(summary=f"visit {n}, corrected"))
        transport = sync_mod.open_transport(home, config)
        report = sync_mod.SyncReport()
        try:
            sync_mod.push(store, transport, report, batch=2)
        finally:
            transport.close()
        assert report.results == {"accepted": 10} and report.pushed == 10
        assert store.outbox_counts()["pending"] == 0
    for n, visit in enumerate(made):
        row = stored(data, visit["id"])
        assert row is not None and (row["rev"], row["summary"]) == (2, f"visit {n}, corrected")


def test_a_failed_batch_does_not_hold_the_sync_for_the_one_behind_it(
        served: tuple[Path, ServerProcess, str, str], tmp_path: Path) -> None:
    """The first batch is refused (a damaged op in the outbox): the second, waiting at
    the server for a turn that will not come, is abandoned at once, not waited for."""
    data, server, rep, card = served
    home = tmp_path / "home"
    config = lib_enroll(data, home, server.url, rep)
    with open_store(home) as store:
        sync_mod.sync(store, sync_mod.open_transport(home, config))
    made = log_visits(home, [card], 4, "offline")  # dated now: after the card, not held
    with open_store(home) as store:
        # Damaged on disk: the server refuses the first batch as a whole (422).
        store.conn.execute("UPDATE outbox SET at=? WHERE entity_id=?",
                           ("not a time", made[0]["id"]))
        transport = sync_mod.open_transport(home, config)
        t = time.monotonic()
        try:
            with pytest.raises(ServerRefused) as refused:
                sync_mod.push(store, transport, sync_mod.SyncReport(), batch=2)
        finally:
            transport.close()
        assert refused.value.status == 422
        assert time.monotonic() - t < WAIT_S  # not held until the server gave up on it
        assert store.outbox_counts()["pending"] == 4  # nothing lost
    for visit in made:
        assert stored(data, visit["id"]) is None
