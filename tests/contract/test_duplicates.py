"""Duplicate cards: "who develops, serves" — the first owner keeps the customer. Admin
paths refuse a second card naming the first; a rep's offline card is held in quarantine
with that reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from schema.enums import OpStatus
from schema.models import CustomerCreate, CustomerPatch
from server.archive.errors import Conflict
from server.rules import Archive
from server.rules.duplicates import BACKFILLED, name_key, phone_key

from ..harness import customer_create
from .kit import Ctx, Stores, customer_row


def test_keys_ignore_format_country_code_case_width_and_punctuation() -> None:
    mobile = {"13817420056", "+86 138 1742 0056", "0086-138-1742-0056", "138 1742 0056"}
    assert {phone_key(p) for p in mobile} == {"13817420056"}
    assert phone_key("021-6322 4580") == phone_key("+86 21 6322 4580") == "02163224580"
    assert phone_key("8601") == "" and phone_key("") == "" and phone_key(None) == ""
    assert name_key("Acme, Ltd.") == name_key("ACME LTD") == name_key("ＡＣＭＥ　Ｌｔｄ") == "acmeltd"
    assert name_key("上海华联超市（有限公司）") == name_key("上海华联超市 有限公司") == "上海华联超市有限公司"


def test_admin_paths_refuse_a_duplicate_naming_the_card_and_its_owner(
        ctx: Ctx, tmp_path: Path) -> None:
    first = ctx.archive.add_customer(
        CustomerCreate(name="杭州青禾食品有限公司", phone="0571-8858 2210"), ctx.a.rep_id)
    for dup in (CustomerCreate(name="杭州青禾食品 有限公司"),
                CustomerCreate(name="Qinghe Foods", phone="+86 571 8858 2210")):
        with pytest.raises(Conflict) as err:
            ctx.archive.add_customer(dup, ctx.b.rep_id)
        assert err.value.code == "duplicate_customer"
        assert f"as {first['card_no']}, owned by Rep A" in err.value.message
    csv = tmp_path / "leads.csv"
    csv.write_text('name,phone\nNew Lead Ltd,021-1111 2222\n"NEW LEAD, LTD.",\n', encoding="utf-8")
    with pytest.raises(Conflict) as err:
        ctx.archive.import_csv(csv)
    assert "leads.csv line 3: same name as leads.csv line 2" in err.value.message
    csv.write_text("name,phone\nOther Lead Ltd,\nQinghe,0571 88582210\n", encoding="utf-8")
    with pytest.raises(Conflict) as err:
        ctx.archive.import_csv(csv)
    assert f"leads.csv line 3: same phone as {first['card_no']}" in err.value.message
    assert ctx.archive.count_customers() == 1  # all or none


def test_a_reps_offline_duplicate_is_quarantined_with_the_reason(ctx: Ctx) -> None:
    pooled = ctx.archive.add_customer(CustomerCreate(name="Pool Lead Co", phone="13900001111"))
    mine = ctx.archive.add_customer(CustomerCreate(name="Harbor Point Logistics"), ctx.a.rep_id)
    results = ctx.push(ctx.b, customer_create("Harbor Point Logistics Ltd."),
                       customer_create("HARBOR POINT LOGISTICS"),
                       customer_create("Another Co", phone="+86 139 0000 1111"))
    assert [r.status for r in results] == [OpStatus.accepted, OpStatus.quarantined,
                                           OpStatus.quarantined]
    assert results[1].reason == (f"same name as {mine['card_no']}, owned by Rep A: who "
                                 "develops, serves — the first owner keeps the customer")
    assert f"same phone as {pooled['card_no']}, in the pool" in str(results[2].reason)
    held = ctx.archive.quarantine()
    assert [q["reason"] for q in held] == [results[1].reason, results[2].reason]


def test_keys_follow_edits_and_old_cards_are_backfilled_once(ctx: Ctx, stores: Stores) -> None:
    card = ctx.archive.add_customer(CustomerCreate(name="Old Name"), ctx.a.rep_id)
    ctx.archive.edit_customer(card["id"], CustomerPatch(name="New Name", phone="021-5555 0101"),
                              "office")
    with pytest.raises(Conflict):
        ctx.archive.add_customer(CustomerCreate(name="Someone", phone="02155550101"))
    ctx.archive.add_customer(CustomerCreate(name="Old Name"))  # free again
    with stores.write() as s:  # cards stored before the keys existed
        for i in range(3):
            s.insert_customer(customer_row(f"FV10000{i}", None, name=f"Legacy {i} Co",
                                           phone=f"0755-8000 000{i}"))
        s.set_meta(BACKFILLED, "0")
    Archive.initialize(ctx.archive.engine)
    with stores.read() as s:
        assert [c["card_no"] for c in s.customers_by_keys("075580000001", "")] == ["FV100001"]
        assert [c["card_no"] for c in s.customers_by_keys("", "legacy2co")] == ["FV100002"]
        assert s.customers_by_keys("", "") == []
        assert s.customers_missing_keys("", 10) == []
    with stores.write() as s:
        s.set_customer_keys(card["id"], "", "")
        assert [c["id"] for c in s.customers_missing_keys("", 10)] == [card["id"]]
        assert s.customers_missing_keys(card["id"], 10) == []
    Archive.initialize(ctx.archive.engine)  # done once: the flag is set
    with stores.read() as s:
        assert [c["id"] for c in s.customers_missing_keys("", 10)] == [card["id"]]
