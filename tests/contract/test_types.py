"""Types identical on both backends: the same story told to SQLite and to PostgreSQL
leaves rows whose columns and Python types match, table by table and store by store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from schema.clock import ManualClock
from schema.models import CustomerPatch
from server.rules import Archive, init_archive

from ..harness import customer_create, customer_update, op
from .kit import T0, Stores, at, enroll_device, ops, visit_create

TABLES = ("meta", "reps", "devices", "enroll_codes", "nonces", "customers", "customer_revisions",
          "visits", "visit_revisions", "ownership", "feed", "applied_ops", "conflicts", "quarantine",
          "audit_log", "revocations", "wipe_orders", "hr_tokens")


def _story(archive: Archive, clock: ManualClock) -> None:
    rep_a = archive.add_rep("A", None, "senior")["id"]
    rep_b = archive.add_rep("B", "A", "junior")["id"]
    a, b = enroll_device(archive, rep_a), enroll_device(archive, rep_b)
    archive.remember_nonce(a.id, "n", 1.0, 300)
    archive.issue_lease(a.id, None)
    cust = archive.add_customer(*_card("Acme"), owner=rep_a)
    archive.edit_customer(cust["id"], CustomerPatch(phone="1"), "office")
    archive.push(a, ops(visit_create(cust["id"]), customer_update(cust["id"], phone="2"),
                        customer_create("Laptop Ltd"),
                        op("visit.update", "0" * 32, {"outcome": "x"}, base_rev=1)))
    archive.push(b, ops(visit_create(cust["id"])))  # quarantined
    clock.advance(timedelta(hours=1))
    archive.create_hr_token("hr")
    archive.record_export("customers", 1, {})
    archive.revoke("A", "left", reassign_to="B")
    device = archive.get_device(a.id)
    assert device is not None
    _, order = archive.final_flush(device, [])
    archive.record_wipe_receipt(device, {"order_id": order["order_id"], "wiped_at": at()})


def _card(name: str) -> tuple[Any, ...]:
    from schema.models import CustomerCreate

    return (CustomerCreate(name=name, grade="A"),)


def _shape(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, set[str]]]:
    cols = list(rows[0]) if rows else []
    types: dict[str, set[str]] = {c: set() for c in cols}
    for r in rows:
        for c in cols:
            types[c].add(type(r[c]).__name__)
    return cols, types


def _shapes(archive: Archive) -> dict[str, Any]:
    stores = Stores(archive)
    out: dict[str, Any] = {f"table {t}": _shape(stores.rows(f"SELECT * FROM {t}")) for t in TABLES}
    with stores.read() as s:
        rep, leaver = s.rep("B"), s.rep("A")
        assert rep is not None and leaver is not None
        device_a = s.devices(leaver["id"])[0]["id"]
        cust = next(iter(s.customers(None)))
        visit = next(iter(s.visits(None, None)))
        out.update({
            "reps": _shape(s.reps()), "devices": _shape(s.devices()),
            "device_row": _shape([s.device_row(device_a) or {}]),
            "customer_revisions": _shape(s.customer_revisions(cust["id"], 1)),
            "visit_revisions": _shape(s.visit_revisions(visit["id"])),
            "conflicts": _shape(s.conflicts()), "quarantined": _shape(s.quarantined()),
            "ownership": _shape(s.ownership(cust["id"])), "revocations": _shape(s.revocations()),
            "applied_ops": _shape(s.applied_ops(device_a)),
            "feed": _shape([vars(r) for r in s.feed(rep["id"], 0, 100)]),
            "counts": _shape([s.counts()]), "audit": _shape(s.audit_entries()),
        })
    return out


def test_both_backends_return_the_same_columns_and_types(tmp_path: Path, pg_url: str) -> None:
    shapes = []
    for url in (None, pg_url):
        clock = ManualClock(T0)
        archive = init_archive(tmp_path / (url and "pg" or "sqlite"), clock, url=url)
        try:
            _story(archive, clock)
            shapes.append(_shapes(archive))
        finally:
            archive.close()
    sqlite, pg = shapes
    assert sqlite.keys() == pg.keys()
    for name in sqlite:
        assert sqlite[name] == pg[name], name
        assert sqlite[name][0], f"{name}: the story left no rows to compare"
    # and the types are the ones promised: no bool, Decimal, memoryview or datetime
    # (JSON text the store decodes comes back as dict/list)
    allowed = {"str", "int", "float", "bytes", "NoneType"}
    decoded = {"snapshot", "payload", "server_value", "rep_value"}
    odd = {(name, col): types for name, (_, cols) in sqlite.items() for col, types in cols.items()
           if not types <= (allowed | {"dict", "list"} if col in decoded else allowed)}
    assert odd == {}
