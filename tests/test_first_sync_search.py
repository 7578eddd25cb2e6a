"""A fresh laptop's first sync fills the vault first and builds the search index once
(issue 10): search must stay complete at every moment. While the index waits (during
the first sync, or after one that was cut off) a search scans the tables exactly; once
built, the index finds the same records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import sync as sync_mod
from agent.home import AgentConfig
from agent.transport import Offline, Transport
from schema.models import CustomerCreate, VisitCreate

from .harness import ServerProcess, add_rep, archive, init_server, lib_enroll, open_store

TERMS = ("华联", "Golden", "golden bridge", "经理", "50%", "a_b", "Trading Co", "青禾")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess, str]]:
    root = tmp_path_factory.mktemp("fts")
    data = root / "server"
    init_server(data)
    rep = add_rep(data, "Search Rep")
    arch = archive(data)
    names = ["上海华联有限公司", "Golden Bridge Trading Co", "杭州青禾", "Sunrise 50% off",
             "a_b Logistics", "Harbor Foods"]
    for i in range(30):
        arch.add_customer(CustomerCreate(name=f"{names[i % len(names)]} {i}",
                                         decision_maker="王经理" if i % 3 == 0 else "Ms Li"),
                          rep)
    server = ServerProcess(data).start()
    try:
        yield root, server, rep
    finally:
        server.stop()


class CutOff:
    """The real transport, cut off (Offline) after `pages` pull requests."""

    def __init__(self, inner: Transport, pages: int) -> None:
        self.inner, self.pages = inner, pages

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if path == "/v1/pull":
            if self.pages == 0:
                raise Offline("link dropped")
            self.pages -= 1
        return self.inner.request(method, path, **kw)


def found(store: Any, term: str) -> set[str]:
    return {c["id"] for c in store.iter_customers(term)}


def test_search_never_misses_during_and_after_an_interrupted_first_sync(
        setup: tuple[Path, ServerProcess, str]) -> None:
    root, server, rep = setup
    home = root / "agent"
    config = lib_enroll(root / "server", home, server.url, rep)
    assert isinstance(config, AgentConfig)
    with open_store(home) as store:
        transport = sync_mod.open_transport(home, config)
        try:
            with pytest.raises(Offline):  # three pages of 4, then the link drops
                sync_mod.pull(store, CutOff(transport, 3), sync_mod.SyncReport(), page=4)
            assert not store.search_index_ready()
            held = {c["id"]: c for c in store.iter_customers()}
            assert 0 < len(held) < 30
            # A visit logged meanwhile is searchable too, by the scan now, by the index later.
            card = next(iter(held))
            store.log_visit(VisitCreate(customer_id=card, purpose="service",
                                        summary="客户要求送样品 samples", started_at=store.clock.now()))
            for term in TERMS:  # every record held that has the term, by exact scan
                want = {cid for cid, c in held.items()
                        if any(term.lower() in str(c[k] or "").lower()
                               for k in ("name", "decision_maker", "card_no", "notes"))}
                assert found(store, term) == want, term
            assert store.count_visits(search="送样品") == 1
            sync_mod.pull(store, transport, sync_mod.SyncReport())  # the rest, then the index
        finally:
            transport.close()
        assert store.search_index_ready() and store.counts()["customers"] == 30
        indexed = {term: found(store, term) for term in TERMS}
        assert store.count_visits(search="送样品") == 1
        assert indexed["华联"] and indexed["50%"] and indexed["a_b"]
        # The index and the exact scan agree on every term (same records, none missed).
        store.defer_search_index()
        assert {term: found(store, term) for term in TERMS} == indexed
        store.build_search_index()
        # The index is kept row by row again: a new card is found at once.
        store.add_customer(CustomerCreate(name="华联 second branch"))
        assert len(found(store, "华联")) == len(indexed["华联"]) + 1


def test_a_vault_that_holds_records_is_not_bulk_loaded(setup: tuple[Path, ServerProcess, str]
                                                       ) -> None:
    root, server, rep = setup
    home = root / "agent-2"
    config = lib_enroll(root / "server", home, server.url, rep)
    with open_store(home) as store:
        store.add_customer(CustomerCreate(name="Made before the first sync"))
        transport = sync_mod.open_transport(home, config)
        try:
            sync_mod.pull(store, transport, sync_mod.SyncReport())
        finally:
            transport.close()
        assert store.search_index_ready()
        assert found(store, "Made before") and len(found(store, "华联")) >= 5
