"""Property-based tests (hypothesis) of the wire models and the field-by-field merge."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from schema.enums import Grade, VisitPurpose
from schema.merge import changed_fields, fields_changed_by_others, merge_fields
from schema.models import (
    CustomerCreate,
    CustomerPatch,
    OpResult,
    PushRequest,
    VisitCreate,
    VisitPatch,
)
from schema.records import to_record
from schema.validation import (
    LONG_MAX,
    NAME_MAX,
    PHONE_MAX,
    REASON_MAX,
    SHORT_MAX,
    EntityId,
    LongText,
    Name,
    Phone,
    Reason,
    RequiredLongText,
    ShortText,
)

many = settings(max_examples=60, deadline=None)

# --- strategies -----------------------------------------------------------------------

# C0 and C1 controls and DEL; tab, newline and CR are allowed in multi-line text only.
CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
ANY_CONTROL = st.sampled_from([c for c in CONTROLS if c not in "\t\n\r"])
LINE_BREAK = st.sampled_from(["\n", "\r", "\r\n"])

# printable text: no control characters, no surrogates
clean = st.characters(blacklist_categories=("Cc", "Cs"))
solid = st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))


def line(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(clean, min_size=min_size, max_size=max_size)


def paragraph(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.one_of(clean, st.sampled_from("\t\n")), max_size=max_size)


phones = st.from_regex(r"[0-9+()\- ./x#*]{0,12}[0-9][0-9+()\- ./x#*]{0,12}", fullmatch=True)
names = line(NAME_MAX, 1).filter(lambda s: s.strip())
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2090, 12, 30)),
    offsets,
)
ids = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)

customer_payloads = st.fixed_dictionaries(
    {"name": names},
    optional={
        "decision_maker": line(60), "grade": st.sampled_from([g.value for g in Grade]),
        "address": line(60), "phone": phones, "industry": line(40), "size": line(20),
        "needs": paragraph(120), "financial_status": paragraph(80),
        "business_status": paragraph(80), "purchasing_status": paragraph(80),
        "credit_status": paragraph(80), "external_relations": paragraph(80),
        "business_contact": line(60), "notes": paragraph(120),
    },
)


@st.composite
def visit_payloads(draw: st.DrawFn) -> dict[str, Any]:
    started = draw(aware)
    out: dict[str, Any] = {
        "customer_id": draw(ids), "started_at": started.isoformat(),
        "purpose": draw(st.sampled_from([p.value for p in VisitPurpose])),
        "summary": draw(paragraph(120).filter(lambda s: s.strip())),
    }
    later = st.timedeltas(timedelta(0), timedelta(days=400))
    if draw(st.booleans()):
        out["ended_at"] = (started + draw(later)).astimezone(draw(offsets)).isoformat()
    if draw(st.booleans()):
        out["next_at"] = (started + draw(later)).isoformat()
    for key, strategy in (("outcome", paragraph(120)), ("feedback", paragraph(120)),
                          ("competitors", paragraph(120)), ("location", line(80)),
                          ("next_place", line(80)), ("next_content", paragraph(120)),
                          ("planned", st.booleans()),
                          ("status", st.sampled_from(["draft", "submitted"]))):
        if draw(st.booleans()):
            out[key] = draw(strategy)
    return out


def roundtrip(model: type[BaseModel], payload: dict[str, Any]) -> None:
    first = model.model_validate(payload)
    # a patch travels as its changed fields only; a record as all of them
    record = first.changes() if hasattr(first, "changes") else to_record(first)
    assert set(record) == (set(payload) if hasattr(first, "changes") else set(model.model_fields))
    again = model.model_validate(record)  # the archive's row form
    assert again == first
    if hasattr(first, "changes"):
        assert again.model_fields_set == first.model_fields_set
    assert model.model_validate_json(orjson.dumps(record)) == first  # the wire form
    unset = hasattr(first, "changes")
    assert model.model_validate_json(first.model_dump_json(exclude_unset=unset)) == first


# --- round trips ---------------------------------------------------------------------------

@many
@given(customer_payloads)
def test_customer_payloads_round_trip(payload: dict[str, Any]) -> None:
    roundtrip(CustomerCreate, payload)
    roundtrip(CustomerPatch, payload)


@many
@given(visit_payloads())
def test_visit_payloads_round_trip(payload: dict[str, Any]) -> None:
    roundtrip(VisitCreate, payload)
    record = to_record(VisitCreate.model_validate(payload))
    # timestamps travel in one canonical UTC form
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["started_at"])
    patch = {k: v for k, v in payload.items() if k != "customer_id"}
    roundtrip(VisitPatch, patch)


@many
@given(st.lists(st.one_of(
    customer_payloads.map(lambda d: ("customer.create", d)),
    visit_payloads().map(lambda d: ("visit.create", d)),
), min_size=1, max_size=5), st.data())
def test_push_batches_round_trip(items: list[tuple[str, dict[str, Any]]], data: Any) -> None:
    op_ids = data.draw(st.lists(ids, min_size=len(items), max_size=len(items), unique=True))
    ops = [{"op_id": op_id, "seq": n + 1, "kind": kind, "entity_id": data.draw(ids),
            "base_rev": 0, "at": data.draw(aware).isoformat(), "data": payload}
           for n, (op_id, (kind, payload)) in enumerate(zip(op_ids, items, strict=True))]
    batch = PushRequest.model_validate_json(orjson.dumps({"ops": ops}))
    assert PushRequest.model_validate_json(batch.model_dump_json()) == batch
    assert [o.op_id for o in batch.ops] == op_ids


# --- text hygiene ------------------------------------------------------------------------

SINGLE_LINE: dict[str, tuple[Any, int]] = {
    "Name": (Name, NAME_MAX), "ShortText": (ShortText, SHORT_MAX), "Phone": (Phone, PHONE_MAX),
}
MULTI_LINE: dict[str, tuple[Any, int]] = {
    "LongText": (LongText, LONG_MAX), "RequiredLongText": (RequiredLongText, LONG_MAX),
    "Reason": (Reason, REASON_MAX),
}
ALL_TEXT = {**SINGLE_LINE, **MULTI_LINE}
ADAPTERS = {name: TypeAdapter(kind) for name, (kind, _) in ALL_TEXT.items()}


def rejected(type_name: str, value: str) -> bool:
    try:
        ADAPTERS[type_name].validate_python(value)
    except ValidationError:
        return True
    return False


def digits_or_text(type_name: str) -> st.SearchStrategy[str]:
    """Non-blank text the type would accept on its own."""
    if type_name == "Phone":
        return st.from_regex(r"[0-9]{1,6}", fullmatch=True)
    return st.text(solid, min_size=1, max_size=30)


@pytest.mark.parametrize("type_name", sorted(ALL_TEXT))
@many
@given(data=st.data())
def test_control_characters_inside_text_are_rejected(type_name: str, data: Any) -> None:
    before = data.draw(digits_or_text(type_name))
    after = data.draw(digits_or_text(type_name))
    control = data.draw(ANY_CONTROL if type_name in MULTI_LINE
                        else st.one_of(ANY_CONTROL, LINE_BREAK))
    assert not rejected(type_name, before + after)
    assert rejected(type_name, before + control + after)


@pytest.mark.parametrize("type_name", sorted(ALL_TEXT))
@many
@given(data=st.data())
def test_text_over_its_maximum_length_is_rejected(type_name: str, data: Any) -> None:
    _, maximum = ALL_TEXT[type_name]
    unit = "8" if type_name == "Phone" else data.draw(solid)
    extra = data.draw(st.integers(1, 50))
    assert not rejected(type_name, unit * maximum)
    assert rejected(type_name, unit * (maximum + extra))


@pytest.mark.parametrize("type_name", sorted(ALL_TEXT))
@many
@given(value=st.text(max_size=80))
def test_whatever_text_is_accepted_is_clean(type_name: str, value: str) -> None:
    try:
        out = ADAPTERS[type_name].validate_python(value)
    except ValidationError:
        return
    allowed = "\t\n\r" if type_name in MULTI_LINE else "\t"
    assert not any(c in CONTROLS and c not in allowed for c in out), repr(out)
    assert len(out) <= ALL_TEXT[type_name][1]
    assert out == out.strip() or not out.strip()


@many
@given(st.text(max_size=70))
def test_entity_ids_are_exactly_the_safe_pattern(value: str) -> None:
    ok = re.fullmatch(r"[A-Za-z0-9_-]{8,64}", value) is not None
    try:
        TypeAdapter(EntityId).validate_python(value)
    except ValidationError:
        assert not ok
    else:
        assert ok


@many
@given(customer_payloads, st.sampled_from(sorted(set(CustomerCreate.model_fields) - {"grade"})),
       ANY_CONTROL)
def test_customer_with_a_control_character_in_any_field_is_rejected(
    payload: dict[str, Any], field: str, control: str
) -> None:
    value = "1" + control + "2"
    with pytest.raises(ValidationError):
        CustomerCreate.model_validate({**payload, field: value})


# --- visit time rules ------------------------------------------------------------------------

@many
@given(visit_payloads(), aware, aware)
def test_visit_rejects_ended_before_started(payload: dict[str, Any], started: datetime,
                                           ended: datetime) -> None:
    payload = {**payload, "started_at": started.isoformat(), "ended_at": ended.isoformat()}
    payload.pop("next_at", None)
    if ended < started:  # compared as instants, whatever the two offsets are
        with pytest.raises(ValidationError, match="ended_at must not be before started_at"):
            VisitCreate.model_validate(payload)
    else:
        assert VisitCreate.model_validate(payload).ended_at == ended


@many
@given(visit_payloads(), st.timedeltas(timedelta(microseconds=1), timedelta(days=30)))
def test_visit_rejects_next_appointment_before_the_visit(payload: dict[str, Any],
                                                        gap: timedelta) -> None:
    started = datetime.fromisoformat(payload["started_at"])
    payload = {**payload, "next_at": (started - gap).isoformat()}
    with pytest.raises(ValidationError, match="next_at"):
        VisitCreate.model_validate(payload)


@many
@given(visit_payloads())
def test_visit_times_must_carry_a_zone(payload: dict[str, Any]) -> None:
    naive = datetime.fromisoformat(payload["started_at"]).replace(tzinfo=None)
    with pytest.raises(ValidationError):
        VisitCreate.model_validate({**payload, "started_at": naive.isoformat()})
    assert VisitCreate.model_validate(payload).started_at.tzinfo is not None


# --- merge -------------------------------------------------------------------------------------

FIELD = st.sampled_from(["name", "phone", "grade", "notes", "needs"])
VALUE = st.one_of(st.none(), st.sampled_from(["", "a", "b", "c"]), st.integers(0, 2))
cards = st.dictionaries(FIELD, VALUE, max_size=5)
edits = st.dictionaries(FIELD, VALUE, min_size=1, max_size=5)
field_sets = st.sets(FIELD, max_size=5)


@many
@given(cards, edits, field_sets)
def test_fields_not_changed_by_others_are_always_applied(
    current: dict[str, Any], changes: dict[str, Any], others: set[str]
) -> None:
    outcome = merge_fields(current, changes, others)
    for name, value in changes.items():
        if name not in others and current.get(name) != value:
            assert outcome.applied[name] == value
            assert name not in outcome.conflicts


@many
@given(cards, edits, field_sets)
def test_field_changed_by_others_is_never_applied_and_always_reported(
    current: dict[str, Any], changes: dict[str, Any], others: set[str]
) -> None:
    outcome = merge_fields(current, changes, others)
    for name in others:
        assert name not in outcome.applied
        if name in changes and changes[name] != current.get(name):
            assert outcome.conflicts[name] == (current.get(name), changes[name])


@many
@given(cards, edits, field_sets)
def test_merge_never_loses_the_reps_value(
    current: dict[str, Any], changes: dict[str, Any], others: set[str]
) -> None:
    outcome = merge_fields(current, changes, others)
    assert not set(outcome.applied) & set(outcome.conflicts)
    assert set(outcome.applied) | set(outcome.conflicts) <= set(changes)
    for name, value in changes.items():
        applied = name in outcome.applied and outcome.applied[name] == value
        unchanged = current.get(name) == value
        recorded = name in outcome.conflicts and outcome.conflicts[name][1] == value
        assert applied or unchanged or recorded, (name, value, outcome)
    # and the inputs are left as they were
    assert merge_fields(current, changes, others) == outcome


@many
@given(cards, edits, field_sets)
def test_merging_the_same_changes_again_yields_nothing_new(
    current: dict[str, Any], changes: dict[str, Any], others: set[str]
) -> None:
    first = merge_fields(current, changes, others)
    merged = {**current, **first.applied}
    second = merge_fields(merged, changes, others)
    assert second.applied == {}
    assert second.conflicts == first.conflicts


revision = st.tuples(cards, cards, st.booleans())


@many
@given(st.lists(revision, max_size=6))
def test_fields_changed_by_others_ignores_the_devices_own_revisions(
    revisions: list[tuple[dict[str, Any], dict[str, Any], bool]],
) -> None:
    result = fields_changed_by_others(revisions)
    expected: set[str] = set()
    for before, after, same_device in revisions:
        if not same_device:
            expected |= {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert result == expected
    # the device's own revisions, however many, change nothing
    own_only = [(b, a, True) for b, a, _ in revisions]
    assert fields_changed_by_others(own_only) == set()
    assert fields_changed_by_others(revisions + own_only) == result


@many
@given(st.lists(cards, min_size=2, max_size=6), st.data())
def test_a_chain_of_office_revisions_reports_every_field_they_changed(
    snapshots: list[dict[str, Any]], data: Any
) -> None:
    # revisions as the archive stores them: consecutive snapshots of one card
    mine = data.draw(st.lists(st.booleans(), min_size=len(snapshots) - 1,
                              max_size=len(snapshots) - 1))
    chain = list(zip(snapshots, snapshots[1:], mine, strict=False))
    result = fields_changed_by_others(chain)
    if not any(mine):
        # every field whose value differs between base and now was changed by others
        assert changed_fields(snapshots[0], snapshots[-1]) <= result
    for before, after, own in chain:
        if not own:
            assert changed_fields(before, after) <= result


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)


@many
@given(st.sampled_from(["accepted", "merged", "conflict", "rejected", "quarantined"]),
       st.none() | st.integers(1, 10**6), st.none() | st.text(max_size=30),
       st.lists(st.text(max_size=10), max_size=3), st.none() | st.text(max_size=12),
       st.none() | st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_a_push_result_on_the_wire_is_its_json_dump(
    status: str, rev: int | None, reason: str | None, conflicts: list[str],
    card_no: str | None, record: dict[str, Any] | None
) -> None:
    # OpResult.wire() is built by hand for speed: it must say what model_dump would
    result = OpResult(op_id="o1", status=status, entity_id="e1", rev=rev, reason=reason,
                      conflicts=conflicts, card_no=card_no, record=record)
    assert orjson.loads(orjson.dumps(result.wire())) == orjson.loads(result.model_dump_json())
