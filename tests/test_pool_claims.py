"""A customer drifts to the pool (公海) and another rep claims it, end to end: a real
`fieldvault-server serve`, real enrolled agents (`fieldvault` CLI for their work,
syncs, `pool list` and `pool claim`; one raw call through the agent's own signed
transport for the device API's refusal code), `jobs run` from the server CLI. The
claim brings down the full card and the history the previous owner wrote; browsing
the pool showed none of it.

The card is made on an archive whose clock is set 100 days back, so the return is
due by the real clock and nothing waits: every step after it runs at the real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.home import AgentConfig
from agent.sync import open_transport
from agent.transport import ServerRefused
from schema.clock import ManualClock, iso
from schema.models import CustomerCreate
from server.rules import open_archive

from . import harness
from .harness import ServerProcess, agent_cli, device_rows, server_cli


def pool_call(home: Path, method: str, path: str, params: dict[str, Any] | None = None,
              body: bytes | None = None) -> Any:
    config = AgentConfig.load(home)
    assert config is not None
    transport = open_transport(home, config)
    try:
        return transport.request(method, path, params, body)
    finally:
        transport.close()


def test_a_returned_customer_is_claimed_with_its_whole_history(server: ServerProcess,
                                                                tmp_path: Path) -> None:
    data = server.data
    arch = harness.archive(data)
    zhang, li = arch.add_rep("张敏", None, "senior")["id"], arch.add_rep("李伟", None, "junior")["id"]
    now = datetime.now(UTC)
    back_then = open_archive(data, ManualClock(now - timedelta(days=100)))
    try:
        card = back_then.add_customer(CustomerCreate(
            name="杭州青禾食品有限公司", phone="0571-8858 2210", industry="食品加工", area="西湖区",
            grade="B", notes="决策人: 沈总"), zhang)
    finally:
        back_then.close()
    home_z, home_l = tmp_path / "zhang", tmp_path / "li"
    harness.lib_enroll(data, home_z, server.url, zhang)
    harness.lib_enroll(data, home_l, server.url, li)
    agent_cli(home_z, "sync")
    # Zhang's last visit, 95 days ago, and a note on the card: the history Li will get.
    agent_cli(home_z, "visit", "log", "--customer", card["card_no"], "--purpose", "service",
              "--summary", "Serviced the packing line", "--started-at",
              iso(now - timedelta(days=95)))
    agent_cli(home_z, "customer", "edit", card["card_no"], "--needs", "包装线自动化改造")
    assert agent_cli(home_z, "sync")["results"] == {"accepted": 2}

    out = server_cli(data, "jobs", "run")
    assert (out["returned"], out["returned_cards"]) == (1, [card["card_no"]])
    assert server_cli(data, "jobs", "run")["returned"] == 0  # idempotent
    agent_cli(home_z, "sync")
    assert card["id"] not in device_rows(home_z)[0]  # evicted from Zhang's laptop

    page = agent_cli(home_l, "pool", "list", "--search", "青禾")
    (entry,) = page["customers"]
    assert set(entry) == {"id", "card_no", "name", "industry", "area", "grade", "in_pool_since"}
    assert (entry["area"], page["claims_left_today"], page["owned"], page["owned_cap"]) \
        == ("西湖区", 5, 0, 100)
    refused = agent_cli(home_z, "pool", "claim", card["card_no"], check=False)  # Zhang waits
    assert refused.returncode == 1 and refused.stderr.startswith("error: reclaim cooldown:")
    assert "claim it again 30 days later" in refused.stderr
    claimed = agent_cli(home_l, "pool", "claim", card["card_no"])
    assert (claimed["card_no"], claimed["claims_left_today"]) == (card["card_no"], 4)
    with pytest.raises(ServerRefused) as err:  # the device API's own answer
        pool_call(home_l, "POST", "/v1/pool/claim", body=b'{"customer_id": "%s"}'
                  % card["id"].encode())
    assert (err.value.status, err.value.code) == (409, "not_in_pool")

    agent_cli(home_l, "sync")
    customers, visits = device_rows(home_l)
    got = customers[card["id"]]
    assert (got["phone"], got["notes"], got["needs"]) == ("0571-8858 2210", "决策人: 沈总",
                                                          "包装线自动化改造")
    (visit,) = visits.values()
    assert (visit["summary"], visit["rep_id"]) == ("Serviced the packing line", zhang)
    history = server_cli(data, "customer", "show", card["card_no"])["ownership_history"]
    assert [(h["source"], h["reason"].split(" (")[0]) for h in history] == [
        ("assigned", "card created"), ("pool", "no visit for 90 days"),
        ("claimed", "claimed from the pool")]
