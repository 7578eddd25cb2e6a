"""Fair distribution (公平分配): leads are dealt round-robin by load, grade A to seniors
and C to juniors, reps at their cap skipped; the plan gives a reason for each."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from schema.clock import ManualClock
from schema.models import CustomerCreate
from server.archive.errors import ArchiveError, Conflict, Forbidden
from server.rules import Archive


def leads(grades: str, prefix: str = "Lead") -> list[tuple[str, CustomerCreate]]:
    return [(f"lead {i + 1}", CustomerCreate(name=f"{prefix} {i + 1}", grade=g))
            for i, g in enumerate(grades)]


def team(archive: Archive, clock: ManualClock, tiers: dict[str, str]) -> None:
    archive.add_rep("Boss", None, "senior")
    archive.add_staff("mgr", "manager", "Boss")
    archive.add_staff("admin", "admin")
    for name, tier in tiers.items():
        clock.advance(timedelta(seconds=1))  # team order (for ties): oldest first
        archive.add_rep(name, "Boss", tier)


def test_seven_leads_to_three_equal_reps_give_3_2_2_and_a_dry_run_writes_nothing(
        archive: Archive, clock: ManualClock) -> None:
    team(archive, clock, {"Zhao": "mid", "Qian": "mid", "Sun": "mid"})
    audit_before = archive.audit_count()
    plan = archive.distribute("mgr", leads("BBBBBBB"), to_team="mgr", dry_run=True)
    assert plan["assigned"] == {"Zhao": 3, "Qian": 2, "Sun": 2}
    assert (archive.count_customers(), archive.audit_count()) == (0, audit_before)
    assert plan["plan"][0]["reason"] == "grade B: any rep; Zhao had the fewest (0)"
    done = archive.distribute("mgr", leads("BBBBBBB"), to_team="Boss")
    assert done["assigned"] == {"Zhao": 3, "Qian": 2, "Sun": 2}
    card = archive.get_customer(done["plan"][3]["customer"])
    assert card["owner_rep_id"] == archive.resolve_rep("Zhao")["id"]
    (history,) = archive.ownership_history(card["id"])
    assert history["reason"] == "fair distribution: grade B: any rep; Zhao had the fewest (1)"
    assert history["by"] == "staff:mgr"
    # The next deal starts from what each holds: 2 more go to the two who hold 2.
    again = archive.distribute("admin", leads("BB", "More"), to_reps=["Zhao", "Qian", "Sun"])
    assert again["assigned"] == {"Zhao": 0, "Qian": 1, "Sun": 1}


def test_tiers_caps_the_pool_and_refusals(archive: Archive, clock: ManualClock) -> None:
    team(archive, clock, {"Senior": "senior", "Mid": "mid", "Junior": "junior"})
    plan = archive.distribute("admin", leads("AABBBCC"), to_team="mgr", dry_run=True)
    to = {(r["grade"], r["to"]) for r in plan["plan"]}
    assert {t for g, t in to if g == "A"} == {"Senior"} and {t for g, t in to if g == "C"} \
        == {"Junior"}
    assert plan["assigned"] == {"Senior": 3, "Mid": 2, "Junior": 2}
    assert plan["plan"][0]["reason"] == "grade A to a senior rep; Senior had the fewest (0)"
    # A junior at their cap is skipped, with the reason; C then goes to anyone.
    archive.set_pool_policy({"cap_junior": 0}, "admin")
    plan = archive.distribute("admin", leads("C"), to_team="mgr", dry_run=True)
    assert plan["plan"][0]["to"] == "Senior"
    assert plan["plan"][0]["reason"].startswith("grade C, no junior rep with room: any rep")
    assert plan["skipped"] == [{"rep": "Junior", "reason": "Junior is at their owned cap "
                                                           "(0 of 0 for a junior rep)"}]
    # The pool's customers are dealt the same way.
    for i in range(2):
        archive.add_customer(CustomerCreate(name=f"Pooled {i}", grade="A"))
    done = archive.distribute("mgr", None, to_team="mgr")
    assert Counter(r["to"] for r in done["plan"]) == {"Senior": 2}
    assert archive.count_customers("pool") == 0
    # Refusals write nothing.
    archive.add_rep("Outsider", None, "mid")
    with pytest.raises(Forbidden):
        archive.distribute("mgr", leads("B", "Out"), to_reps=["Outsider"])
    with pytest.raises(Conflict) as err:
        archive.distribute("admin", leads("BB", "Pooled"), to_reps=["Mid"])
    assert err.value.message.startswith("lead 1: same name as FV000002")
    with pytest.raises(ArchiveError):
        archive.distribute("admin", leads("B"), to_team="mgr", to_reps=["Mid"])
    assert archive.count_customers() == 2
