"""A pull page in rows (`GET /v1/pull?shape=rows`, issue 10): what the agent's vault holds
after a sync is the same whether its pages came in rows or in records (an older server
answers in records), and rows whose columns differ from the vault's are read by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import sync as sync_mod
from agent.store import CUSTOMER_COLUMNS, VISIT_COLUMNS, vault_rows
from agent.transport import Transport
from schema.fields import PULL_CUSTOMER_ROW, PULL_VISIT_ROW
from schema.models import CustomerCreate, VisitCreate

from .harness import ServerProcess, add_rep, archive, init_server, lib_enroll, open_store


def test_the_pull_columns_are_the_vaults() -> None:
    # Else every page would be read by name (correct, but a tuple per row).
    assert (PULL_CUSTOMER_ROW, PULL_VISIT_ROW) == (CUSTOMER_COLUMNS, VISIT_COLUMNS)


def test_rows_in_other_columns_are_read_by_name() -> None:
    rows = [["v1", 1, "c1"], ["v2", 2, "c1"]]
    assert vault_rows(rows, list(VISIT_COLUMNS), "visit") is rows
    swapped = [list(reversed(r)) for r in rows]
    got = vault_rows(swapped, ["customer_id", "rev", "id"], "visit")
    want = {"id": "v2", "rev": 2, "customer_id": "c1", "review_comment": "", "summary": None}
    assert {k: dict(zip(VISIT_COLUMNS, got[1], strict=True))[k] for k in want} == want
    card = dict(zip(CUSTOMER_COLUMNS, vault_rows([["c9"]], ["id"], "customer")[0], strict=True))
    assert (card["id"], card["locked"], card["area"]) == ("c9", 0, "")


class InRecords:
    """The real transport, its pulls without `shape`: what an older server answers."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.pulls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                **kw: Any) -> Any:
        if path == "/v1/pull" and params:
            params = {k: v for k, v in params.items() if k != "shape"}
            self.pulls += 1
        answer = self.inner.request(method, path, params=params, **kw)
        if path == "/v1/pull":
            assert "columns" not in answer
        return answer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess, str]]:
    root = tmp_path_factory.mktemp("rows")
    data = root / "server"
    init_server(data)
    rep = add_rep(data, "Rows Rep")
    arch = archive(data)
    arch.add_staff("boss", "admin")
    cards = [arch.add_customer(CustomerCreate(name=f"华联 {i}", notes="长 note " * i), rep)
             for i in range(7)]
    arch.lock_customer(cards[0]["card_no"], "boss", "key account")
    server = ServerProcess(data).start()
    try:
        yield root, server, rep
    finally:
        server.stop()


def vault(store: Any) -> tuple[list[Any], list[Any]]:
    return (store.conn.execute("SELECT * FROM customers ORDER BY id").fetchall(),
            store.conn.execute("SELECT * FROM visits ORDER BY id").fetchall())


def test_a_sync_in_rows_and_one_in_records_fill_the_same_vault(
        served: tuple[Path, ServerProcess, str]) -> None:
    root, server, rep = served
    homes = [root / name for name in ("writer", "rows", "records")]
    configs = [lib_enroll(root / "server", home, server.url, rep) for home in homes]
    with open_store(homes[0]) as store:  # visits from another laptop of the rep
        transport = sync_mod.open_transport(homes[0], configs[0])
        try:
            sync_mod.sync(store, transport)
            for i, card in enumerate(store.iter_customers()):
                store.log_visit(VisitCreate(customer_id=card["id"], purpose="service",
                                            planned=i % 2 == 0, summary=f"送样品 {i}",
                                            started_at=store.clock.now()))
            sync_mod.sync(store, transport)
        finally:
            transport.close()
    held = []
    for home, config, in_records in ((homes[1], configs[1], False), (homes[2], configs[2], True)):
        with open_store(home) as store:
            transport = sync_mod.open_transport(home, config)
            try:
                via = InRecords(transport) if in_records else transport
                report = sync_mod.sync(store, via, build_index=True)  # type: ignore[arg-type]
            finally:
                transport.close()
            assert (report.pulled_customers, report.pulled_visits) == (7, 7)
            assert not in_records or via.pulls >= 1  # type: ignore[union-attr]
            held.append(vault(store))
            assert store.count_visits(search="送样品") == 7
            assert sorted(r[0] for r in store.conn.execute("SELECT locked FROM customers")) == (
                [0] * 6 + [1])
            assert sorted(r[0] for r in store.conn.execute("SELECT planned FROM visits")) == (
                [0] * 3 + [1] * 4)
    assert held[0] == held[1]
