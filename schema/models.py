"""Wire models: what travels between agent and server, validated identically on both sides."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, model_validator

from .enums import (
    CallbackStatus,
    ChangeKind,
    Grade,
    OpKind,
    OpStatus,
    OwnershipSource,
    PlanStatus,
    VisitPurpose,
    VisitStatus,
)
from .evidence import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS
from .fields import CUSTOMER_EDITABLE_FIELDS as CUSTOMER_EDITABLE_FIELDS
from .fields import VISIT_EDITABLE_FIELDS as VISIT_EDITABLE_FIELDS
from .records import to_record
from .validation import (
    MAX_OPS_PER_PUSH,
    MAX_WIRE_INT,
    EntityId,
    LongText,
    Name,
    Phone,
    Reason,
    RequiredLongText,
    ShortText,
    Time,
)


class Strict(BaseModel):
    """A request model. The server parses wire JSON with strict=True (deps.parse_json):
    `false` is not an integer nor `0` a time there, while the agent may still build
    these from its own typed-in strings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- customer card (客户卡) --------------------------------------------------


class CustomerPatch(Strict):
    """Changed card fields; absent fields are untouched."""

    name: Name | None = None
    decision_maker: ShortText | None = None
    grade: Grade | None = None
    address: ShortText | None = None
    area: ShortText | None = None
    phone: Phone | None = None
    industry: ShortText | None = None
    size: ShortText | None = None
    needs: LongText | None = None
    financial_status: LongText | None = None
    business_status: LongText | None = None
    purchasing_status: LongText | None = None
    credit_status: LongText | None = None
    external_relations: LongText | None = None
    business_contact: ShortText | None = None
    notes: LongText | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> CustomerPatch:
        if not self.model_fields_set:
            raise ValueError("an edit must change at least one field")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        return to_record(self, include=set(self.model_fields_set))


class CustomerCreate(Strict):
    name: Name
    decision_maker: ShortText = ""
    grade: Grade = Grade.C
    address: ShortText = ""
    area: ShortText = ""
    phone: Phone = ""
    industry: ShortText = ""
    size: ShortText = ""
    needs: LongText = ""
    financial_status: LongText = ""
    business_status: LongText = ""
    purchasing_status: LongText = ""
    credit_status: LongText = ""
    external_relations: LongText = ""
    business_contact: ShortText = ""
    notes: LongText = ""


class Customer(CustomerCreate):
    """A customer card as the archive holds it."""

    model_config = ConfigDict(extra="ignore")

    id: EntityId
    rev: int
    card_no: str
    created_by: str
    created_at: datetime
    owner_rep_id: str | None
    owned_since: datetime | None
    ownership_source: OwnershipSource
    last_served_at: datetime | None = None
    updated_at: datetime
    # A key account a manager locked: exempt from the pool's return rules.
    locked: bool = False


# --- attachments and visit evidence (schema/evidence.py) ---------------------------

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lowercase hex sha256")]


class AttachmentRef(BaseModel):
    """One attachment as a visit names it; the bytes travel separately, by sha256."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sha256: Sha256
    name: Annotated[str, Field(min_length=1, max_length=200)]
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES)
    content_type: Annotated[str, Field(min_length=3, max_length=100,
                                       pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]


class AttachmentPart(BaseModel):
    """Where a chunk of an upload belongs: the whole file's hash, size and type, and
    the chunk's offset (the bytes themselves travel in the route's own field)."""

    model_config = ConfigDict(extra="forbid")

    sha256: Sha256
    size: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES, description="the whole file's size")
    content_type: Annotated[str, Field(min_length=3, max_length=100,
                                       pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]
    offset: int = Field(ge=0, le=MAX_ATTACHMENT_BYTES, description="where the chunk starts")


class UploadState(BaseModel):
    """How much of an attachment's upload the server holds (`/v1/attachments/upload`,
    and a revoked laptop's sealed copy, `/v1/final-flush/attachments`)."""

    sha256: str
    received: int = Field(description="bytes the server holds: resume from here")
    complete: bool


class Evidence(BaseModel):
    """The device's signature over one visit revision (schema.evidence.message)."""

    model_config = ConfigDict(extra="forbid")

    device_time: Annotated[str, Field(min_length=20, max_length=40,
                                      description="the laptop's clock when saved (ISO UTC)")]
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    signature: Annotated[str, Field(min_length=80, max_length=100,
                                    description="base64 Ed25519 over `message()`")]


# --- visit record (拜访记录) -------------------------------------------------


class VisitCreate(Strict):
    customer_id: EntityId
    planned: bool = False
    started_at: Time
    ended_at: Time | None = None
    location: ShortText = ""
    purpose: VisitPurpose
    summary: RequiredLongText
    outcome: LongText = ""
    feedback: LongText = ""
    competitors: LongText = ""
    next_at: Time | None = None
    next_place: ShortText = ""
    next_content: LongText = ""
    status: Literal[VisitStatus.draft, VisitStatus.submitted] = VisitStatus.submitted

    @model_validator(mode="after")
    def _times(self) -> VisitCreate:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at must not be before started_at")
        if self.next_at is not None and self.next_at < self.started_at:
            raise ValueError("next_at (next appointment) must be after the visit started")
        return self


class VisitPatch(Strict):
    planned: bool | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    location: ShortText | None = None
    purpose: VisitPurpose | None = None
    summary: RequiredLongText | None = None
    outcome: LongText | None = None
    feedback: LongText | None = None
    competitors: LongText | None = None
    next_at: Time | None = None
    next_place: ShortText | None = None
    next_content: LongText | None = None
    status: Literal[VisitStatus.draft, VisitStatus.submitted] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> VisitPatch:
        if not self.model_fields_set:
            raise ValueError("an edit must change at least one field")
        for required in ("started_at", "purpose", "summary", "planned", "status"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be cleared")
        return self

    def changes(self) -> dict[str, Any]:
        return to_record(self, include=set(self.model_fields_set))


class VisitVoid(Strict):
    reason: Reason


class Visit(VisitCreate):
    model_config = ConfigDict(extra="ignore")

    id: EntityId
    rev: int
    rep_id: str
    status: VisitStatus = VisitStatus.submitted  # type: ignore[assignment]
    void_reason: str = ""
    quarantined: bool = False
    created_at: datetime
    updated_at: datetime
    # Review (拜访记录审核): the manager's comment on approval or return.
    review_comment: str = ""
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    # Call-back verification (电话回访); None: not picked by the policy.
    callback: CallbackStatus | None = None
    callback_note: str = ""
    # Photos and signed forms the visit names (schema/evidence.py); their bytes are
    # fetched by sha256 from /v1/attachments.
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


# --- sync operations ---------------------------------------------------------


class OpBase(Strict):
    op_id: EntityId  # client-generated; the idempotency key
    seq: int = Field(ge=1, le=MAX_WIRE_INT)  # per-device sequence, for ordering and diagnostics
    entity_id: EntityId
    base_rev: int = Field(default=0, ge=0, le=MAX_WIRE_INT)
    at: Time  # when the rep did it, by the device clock


class CustomerCreateOp(OpBase):
    kind: Literal[OpKind.customer_create]
    data: CustomerCreate


class CustomerUpdateOp(OpBase):
    kind: Literal[OpKind.customer_update]
    data: CustomerPatch


class VisitCreateOp(OpBase):
    kind: Literal[OpKind.visit_create]
    data: VisitCreate
    # The laptop's signature over this revision and its attachments (absent from agents
    # older than visit evidence; a bad one is refused).
    evidence: Evidence | None = None


class VisitUpdateOp(OpBase):
    kind: Literal[OpKind.visit_update]
    data: VisitPatch
    evidence: Evidence | None = None


class VisitVoidOp(OpBase):
    kind: Literal[OpKind.visit_void]
    data: VisitVoid


# --- daily visit plan (每日拜访计划) ---------------------------------------------

PLAN_MAX_ITEMS = 50
Day = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM")]


class PlanItem(Strict):
    customer_id: EntityId
    purpose: VisitPurpose
    time: ClockTime | None = None


class PlanSubmit(Strict):
    """The whole plan for one day, as the rep submits it (again, after a return)."""

    day: Day
    items: list[PlanItem] = Field(min_length=1, max_length=PLAN_MAX_ITEMS)


class Plan(BaseModel):
    """A plan as the archive holds it; its id is `<rep_id>:<day>`."""

    model_config = ConfigDict(extra="ignore")

    id: str
    rep_id: str
    day: str
    rev: int
    status: PlanStatus
    items: list[PlanItem]
    comment: str = ""
    submitted_at: datetime
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None


class PlanSubmitOp(OpBase):
    """entity_id is the plan's day (YYYY-MM-DD): one plan per rep and day."""

    kind: Literal[OpKind.plan_submit]
    data: PlanSubmit


Operation = Annotated[
    CustomerCreateOp | CustomerUpdateOp | VisitCreateOp | VisitUpdateOp | VisitVoidOp
    | PlanSubmitOp,
    Field(discriminator="kind"),
]


class PushRequest(Strict):
    ops: list[Operation] = Field(min_length=1, max_length=MAX_OPS_PER_PUSH)
    # The archive epoch the device last synced with; a different one means the
    # archive was restored and the device must reconcile first (409 epoch_changed).
    archive_epoch: str | None = Field(default=None, max_length=64)
    after_seq: int = Field(
        default=0, ge=0, le=MAX_WIRE_INT,
        description="The highest op seq of the batch the device sent before this one in the "
        "same push (0: none). The archive applies this batch only once that one is answered, "
        "so a device may have two batches in flight; one whose turn does not come within "
        "the wait is refused with 409 push_out_of_order and is sent again.")
    defer: bool = Field(
        default=False, description="Ask the archive to store the batch and answer at once, "
        "each op `received`, and to apply its rules after the answer (a laptop with a long "
        "backlog gets its work off the disk first). The verdicts come from "
        "POST /v1/push/verdicts. A revoked device's batch is never deferred.")

    @model_validator(mode="after")
    def _unique_ids(self) -> PushRequest:
        ids = [op.op_id for op in self.ops]
        if len(set(ids)) != len(ids):
            raise ValueError("op_id values must be unique within a push")
        return self


class OpResult(BaseModel):
    op_id: str
    status: OpStatus
    entity_id: str
    rev: int | None = None
    reason: str | None = None
    conflicts: list[str] = Field(default_factory=list)
    card_no: str | None = None
    # Not validated: the server builds it from its own row (validating copied the dict,
    # ~3 us of each pushed visit); the schema still says what it is.
    record: Annotated[dict[str, Any] | None, SkipValidation] = Field(
        default=None, description="An accepted visit op's visit as the archive now keeps it, shaped "
        "as a pull sends it (without its attachments, which the laptop holds): the laptop "
        "stores it, and later pulls leave out the changes this device's pushes made. For a "
        "new visit (visit.create) only what the archive set: id, customer_id, started_at, "
        "rev, status, created_at, updated_at and the review and call-back columns; the "
        "archive keeps the content as sent, so the laptop keeps its own.")

    def wire(self) -> dict[str, Any]:
        """The JSON shape of `model_dump(mode="json")`, built directly: a push answers
        1,000 of these, and the record's dict was walked value by value."""
        return {"op_id": self.op_id, "status": self.status.value, "entity_id": self.entity_id,
                "rev": self.rev, "reason": self.reason, "conflicts": self.conflicts,
                "card_no": self.card_no, "record": self.record}


class SealedBox(BaseModel):
    """A payload encrypted to one X25519 public key (schema/lease.py `seal`): a lease
    sealed to a device, or an outbox envelope sealed to the server."""

    model_config = ConfigDict(extra="forbid")

    ephemeral_public_key: Annotated[str, Field(min_length=40, max_length=64)]
    nonce: Annotated[str, Field(min_length=12, max_length=24)]
    ciphertext: Annotated[str, Field(min_length=1, max_length=4 * 1024 * 1024)]


class WipeOrder(BaseModel):
    """Signed by the server key over the order and the request's nonce."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["wipe_order"]
    order_id: str
    device_id: str
    rep_id: str
    issued_at: datetime
    signature: str


class PushResponse(BaseModel):
    results: list[OpResult]
    server_time: datetime
    archive_epoch: str
    wipe_order: WipeOrder | None = Field(default=None, description=(
        "Only for a revoked device: its push was its final flush (every op quarantined)."))


class CustomerChange(BaseModel):
    kind: Literal[ChangeKind.customer]
    id: str
    record: Customer


class VisitChange(BaseModel):
    kind: Literal[ChangeKind.visit]
    id: str
    record: Visit


class EvictChange(BaseModel):
    """The customer left the rep's scope: the agent drops it and its visits."""

    kind: Literal[ChangeKind.evict]
    id: str


class PlanChange(BaseModel):
    kind: Literal[ChangeKind.plan]
    id: str
    record: Plan


Change = Annotated[CustomerChange | VisitChange | EvictChange | PlanChange,
                   Field(discriminator="kind")]


class PoolRules(BaseModel):
    """What the laptop needs to warn its rep before a customer returns to the pool (公海)."""

    return_days: dict[Grade, int]  # no visit for this many days: back to the pool
    warn_days: int  # the owner is warned this many days before
    grace_days: int  # returns wait this long for visits not yet synced


class PullResponse(BaseModel):
    changes: list[Change]
    cursor: str
    more: bool
    server_time: datetime
    archive_epoch: str
    pool_rules: PoolRules | None = None
    # With `count=1`: the feed rows left from this page on (a progress bar's total).
    remaining: int | None = None
    # With `shape=rows` (issue 10): cards and visits as arrays of the columns `columns`
    # names per kind ("customer", "visit"; schema.fields.PULL_CUSTOMER_ROW and
    # PULL_VISIT_ROW), booleans as 0/1, instead of `changes` entries; `attachments`: the
    # attachments of those visits that name any, by visit id. `changes` then holds only
    # evictions and plans.
    columns: dict[str, list[str]] | None = None
    customers: list[list[Any]] | None = None
    visits: list[list[Any]] | None = None
    attachments: dict[str, list[AttachmentRef]] | None = None


# --- the pool (公海), as a rep browses it online -------------------------------------


class PoolEntry(BaseModel):
    """Only what a rep needs to choose: no phone, notes or history until claimed."""

    id: str
    card_no: str
    name: str
    industry: str
    area: str
    grade: Grade
    in_pool_since: datetime | None = None


class PoolPage(BaseModel):
    customers: list[PoolEntry]
    total: int
    claims_left_today: int
    owned: int
    owned_cap: int


class ClaimRequest(Strict):
    customer_id: EntityId


class ClaimResponse(BaseModel):
    customer_id: str
    card_no: str
    name: str
    claims_left_today: int


Rev = Annotated[int, Field(ge=0, le=MAX_WIRE_INT)]


Seq = Annotated[int, Field(ge=1, le=MAX_WIRE_INT)]
# Verdicts asked for at once: two push batches' worth.
MAX_VERDICTS = 2 * MAX_OPS_PER_PUSH


class VerdictsRequest(Strict):
    """The ops a push answered `received`, as (op_id, seq): what became of each."""

    ops: list[tuple[EntityId, Seq]] = Field(min_length=1, max_length=MAX_VERDICTS)


class VerdictsResponse(BaseModel):
    results: list[OpResult] = Field(description="The verdict of each op the archive has "
                                    "applied, as a synchronous push would have answered it.")
    pending: list[str] = Field(description="Ops stored, not applied yet: ask again later.")
    unknown: list[str] = Field(description="Ops the archive holds neither applied nor stored "
                               "(e.g. the archive was restored from a backup taken before they "
                               "arrived): the device pushes them again.")
    archive_epoch: str


class ReconcileRequest(Strict):
    """(id, rev) pairs the device holds; the server answers with its own revs."""

    customers: list[tuple[EntityId, Rev]] = Field(default_factory=list, max_length=20000)
    visits: list[tuple[EntityId, Rev]] = Field(default_factory=list, max_length=20000)


class ReconcileResponse(BaseModel):
    customers: dict[str, int]
    visits: dict[str, int]
    archive_epoch: str


# --- enrollment ---------------------------------------------------------------


class EnrollRequest(Strict):
    code: Annotated[str, Field(min_length=4, max_length=64)]
    device_name: ShortText = ""
    sign_public_key: Annotated[str, Field(min_length=40, max_length=64)]  # base64 raw Ed25519
    box_public_key: Annotated[str, Field(min_length=40, max_length=64)]  # base64 raw X25519


class EnrollResponse(BaseModel):
    sealed_lease: SealedBox  # the first key lease, sealed to the device's X25519 key
    device_id: str
    rep_id: str
    rep_name: str
    server_sign_public_key: str
    server_time: datetime
    archive_epoch: str


# --- device answers: check-in, identity, the end of a revoked device -----------

DeviceState = Literal["active", "blocked", "revoked", "wipe_pending", "wiped"]


class LeaseResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sealed_lease: SealedBox  # the lease and its server signature, sealed to the device


class WhoamiResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str
    rep_id: str
    state: DeviceState
    server_time: datetime
    archive_epoch: str


class WipeOrderResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wipe_order: WipeOrder


class FinalFlushResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: list[OpResult]
    server_time: datetime
    wipe_order: WipeOrder


class WipeReceiptResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recorded: Literal[True]
    order_id: str


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] | None = None
