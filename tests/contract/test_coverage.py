"""Every method of the storage protocols has a contract test: a store method added
without one fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from server.archive import engine, store

HERE = Path(__file__).parent


def _methods(module: object) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__ or not getattr(cls, "_is_protocol", False):  # type: ignore[attr-defined]
            continue
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and inspect.isfunction(value):
                found.setdefault(attr, set()).add(name)
    return found


def test_every_protocol_method_is_called_in_a_contract_test() -> None:
    methods = {**_methods(store), **_methods(engine)}
    assert {"insert_rep", "feed", "audit_all", "counts", "execute", "job_lock"} <= methods.keys()
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(HERE.glob("test_*.py"))
                     if p.name != Path(__file__).name)
    missing = sorted(f"{'/'.join(sorted(owners))}.{name}" for name, owners in methods.items()
                     if not re.search(rf"\.{re.escape(name)}\(", text))
    assert missing == [], f"no contract test calls {missing}: add one in tests/contract/"
