"""Proof: 20 agents syncing at once, while the office edits cards, make no errors
and no doubles.

Twenty enrolled agents (real homes, real SQLCipher vaults) each log visits,
develop a new card and edit a note on their cards, then all sync at the same
moment (threads running the library sync, which is what `fieldvault sync` runs)
against a real `fieldvault-server serve` process, for a few seeded rounds.
Meanwhile the office edits the same cards' `needs` through the library on the
same archive file (what `fieldvault-server customer edit` does) and through
the real CLI. Then: 0 errors, every record distinct (ids and card numbers),
every visit exactly once in the archive and on its author's device, every card
the same on the device and in the archive, with both the rep's and the
office's edits.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schema.models import CustomerCreate, CustomerPatch, VisitCreate
from server.rules import open_archive

from . import harness
from .harness import ServerProcess, server_cli

pytestmark = pytest.mark.proof

SEED = 7_2026
AGENTS = 20
ROUNDS = 3
VISITS_PER_ROUND = 4
OFFICE_EDITS_PER_ROUND = 40
OFFICE_CLI_EDITS_PER_ROUND = 2
JOIN_TIMEOUT_S = 120


@dataclass
class Agent:
    home: Path
    rep_id: str
    customers: list[str]  # cards the admin gave the rep
    developed: list[str] = field(default_factory=list)
    visits: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


def work(agent: Agent, rng: random.Random, round_no: int) -> None:
    """What a rep does offline between syncs."""
    with harness.open_store(agent.home) as store:
        card = store.add_customer(CustomerCreate(name=f"{agent.rep_id} developed r{round_no}"))
        agent.developed.append(card["id"])
        for i in range(VISITS_PER_ROUND):
            row = store.log_visit(VisitCreate(
                customer_id=rng.choice(agent.customers + agent.developed), purpose="order",
                summary=f"{agent.rep_id} r{round_no} v{i}", started_at=datetime.now(UTC)))
            agent.visits.add(row["id"])
        cid = rng.choice(agent.customers)
        note = f"{agent.rep_id} note r{round_no}"
        store.edit_customer(cid, CustomerPatch(notes=note))
        agent.notes[cid] = note


def run_threads(targets: list[Any], errors: list[str]) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=JOIN_TIMEOUT_S)
        if t.is_alive():
            errors.append("a thread did not finish in time")


def test_twenty_agents_sync_at_once_while_the_office_edits(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data
    arch = harness.archive(data)
    rng = random.Random(SEED)
    agents: list[Agent] = []
    for n in range(AGENTS):
        rep = arch.add_rep(f"Busy Rep {n:02d}")["id"]
        cards = harness.add_customers(data, rep, [f"Busy {n:02d} Customer {i}" for i in range(3)])
        home = tmp_path / f"agent{n:02d}"
        harness.lib_enroll(data, home, server.url, rep)
        harness.lib_sync(home)
        agents.append(Agent(home, rep, [c["id"] for c in cards]))
    office_cards = [cid for a in agents for cid in a.customers]
    needs: dict[str, str] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def sync(agent: Agent, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            report = harness.lib_sync(agent.home)
            with lock:
                for status, count in report.results.items():
                    agent.statuses[status] = agent.statuses.get(status, 0) + count
        except Exception as exc:  # noqa: BLE001 - every error is a failure, reported whole
            with lock:
                errors.append(f"{agent.rep_id}: {type(exc).__name__}: {exc}")

    def office_library(round_no: int, barrier: threading.Barrier, picks: list[str]) -> None:
        try:
            office = open_archive(data)  # its own connection to the same file, as the CLI has
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            for i, cid in enumerate(picks):
                value = f"office r{round_no} e{i}"
                office.edit_customer(cid, CustomerPatch(needs=value), "office")
                with lock:
                    needs[cid] = value
        except Exception as exc:  # noqa: BLE001
            with lock:
                errors.append(f"office: {type(exc).__name__}: {exc}")

    def office_cli(round_no: int, barrier: threading.Barrier, picks: list[str]) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_S)
            for i, cid in enumerate(picks):
                value = f"office cli r{round_no} e{i}"
                server_cli(data, "customer", "edit", cid, "--needs", value, "--by", "office")
                with lock:
                    needs[cid] = value
        except Exception as exc:  # noqa: BLE001
            with lock:
                errors.append(f"office cli: {type(exc).__name__}: {exc}")

    for round_no in range(ROUNDS):
        for agent in agents:
            work(agent, rng, round_no)
        # the office's two writers take disjoint cards, so "last value" is well defined
        picks = rng.sample(office_cards, OFFICE_EDITS_PER_ROUND + OFFICE_CLI_EDITS_PER_ROUND)
        barrier = threading.Barrier(AGENTS + 2)
        run_threads(
            [lambda a=a: sync(a, barrier) for a in agents]
            + [lambda: office_library(round_no, barrier, picks[:OFFICE_EDITS_PER_ROUND]),
               lambda: office_cli(round_no, barrier, picks[OFFICE_EDITS_PER_ROUND:])],
            errors)
        assert errors == [], errors

    # A last sync, all at once again, brings every office edit down.
    barrier = threading.Barrier(AGENTS)
    run_threads([lambda a=a: sync(a, barrier) for a in agents], errors)
    assert errors == [], errors

    ops_per_round = 1 + VISITS_PER_ROUND + 1
    for agent in agents:
        assert set(agent.statuses) <= {"accepted", "merged"}, (agent.rep_id, agent.statuses)
        assert sum(agent.statuses.values()) == ROUNDS * ops_per_round, agent.statuses
        assert harness.outbox_counts(agent.home) == harness.EMPTY_OUTBOX

    archived_visits = arch.list_visits()
    ids = [v["id"] for v in archived_visits]
    assert len(ids) == len(set(ids)) == AGENTS * ROUNDS * VISITS_PER_ROUND
    summaries = [v["summary"] for v in archived_visits]
    assert len(summaries) == len(set(summaries))  # each logged once, stored once
    by_rep: dict[str, set[str]] = {}
    for v in archived_visits:
        by_rep.setdefault(v["rep_id"], set()).add(v["id"])
        assert v["rev"] == 1

    archived_cards = {c["id"]: c for c in arch.iter_customers()}
    card_nos = [c["card_no"] for c in archived_cards.values()]
    assert len(card_nos) == len(set(card_nos)) == AGENTS * (3 + ROUNDS)
    seen_visits: set[str] = set()
    for agent in agents:
        dev_cards, dev_visits = harness.device_rows(agent.home)
        assert set(dev_visits) == agent.visits == by_rep[agent.rep_id]
        assert not seen_visits & set(dev_visits)  # no visit on two devices
        seen_visits |= set(dev_visits)
        assert set(dev_cards) == set(agent.customers) | set(agent.developed)
        for cid, mine in dev_cards.items():
            there = archived_cards[cid]
            for key in ("rev", "card_no", "name", "notes", "needs", "owner_rep_id"):
                assert mine[key] == there[key], (cid, key, mine[key], there[key])
            assert there["notes"] == agent.notes.get(cid, "")
            assert there["needs"] == needs.get(cid, "")
    assert "Traceback" not in server.log.read_text(errors="replace")
    office_edits = ROUNDS * (OFFICE_EDITS_PER_ROUND + OFFICE_CLI_EDITS_PER_ROUND)
    print(f"\nconcurrency: {AGENTS} agents x {ROUNDS + 1} simultaneous syncs, "
          f"{len(ids)} visits, {len(card_nos)} cards, {office_edits} office edits, 0 errors")
