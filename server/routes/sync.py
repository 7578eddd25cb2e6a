"""Push and pull: the sync protocol's two halves."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from schema.clock import Clock, iso
from schema.fields import PULL_CUSTOMER_ROW, PULL_VISIT_ROW
from schema.models import (
    PullResponse,
    PushRequest,
    PushResponse,
    ReconcileRequest,
    ReconcileResponse,
    VerdictsRequest,
    VerdictsResponse,
    WhoamiResponse,
)
from schema.validation import ASCII_INT

from .. import metrics
from ..archive.errors import ArchiveError, Unavailable
from ..auth import Pusher
from ..deps import (
    ArchiveDep,
    ClockDep,
    CurrentDevice,
    PushingDevice,
    ResponseSigner,
    SettingsDep,
    decode_body,
    parse_json,
)
from ..errors import ApiError
from ..openapi import request_body
from ..rules import Archive
from ..settings import Settings
from ..signed import SIGNED_RESPONSE, Signer

router = APIRouter(prefix="/v1", tags=["sync"])

# A pull page in rows names its columns: an agent whose own differ (another version)
# can still read it by name.
PULL_COLUMNS = {"customer": list(PULL_CUSTOMER_ROW), "visit": list(PULL_VISIT_ROW)}


def encode_cursor(seq: int, epoch: str) -> str:
    return base64.urlsafe_b64encode(f"1:{epoch}:{seq}".encode()).decode().rstrip("=")


def epoch_changed() -> ApiError:
    return ApiError(409, "epoch_changed",
                    "the archive was restored: the agent reconciles and syncs again")


def decode_cursor(cursor: str, epoch: str) -> int:
    """The feed position a cursor names; a cursor from another archive epoch is refused
    with 409 epoch_changed, so the agent reconciles before trusting the restored archive."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, cursor_epoch, seq = text.split(":")
        if version != "1" or not ASCII_INT.fullmatch(seq):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this server issued") from None
    if cursor_epoch != epoch:
        raise epoch_changed()
    return int(seq)


def _ascii_int(value: Any) -> Any:
    """A query integer as plain ASCII digits: pydantic's lax parsing of query strings
    would also take `+5`, `1_0` or ` 5`."""
    if isinstance(value, str) and not ASCII_INT.fullmatch(value):
        raise ValueError("must be a whole number written in the digits 0-9")
    return value


@router.post("/push", response_model=PushResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(PushRequest))
async def push(
    request: Request, signer: ResponseSigner, pusher: PushingDevice, archive: ArchiveDep,
    clock: ClockDep, settings: SettingsDep,
) -> Response:
    """Apply a batch of operations; each op_id is applied at most once. A batch naming
    `after_seq` waits for the device's batch before it (two may be in flight).

    From a revoked device the batch is its final flush: every op is quarantined
    for review and the answer carries a wipe order signed by the server key."""
    try:
        return await _push(request, signer, pusher, archive, clock, settings)
    except (ApiError, ArchiveError) as exc:
        if not isinstance(exc, Unavailable):  # a refusal, not the archive failing
            # Refused before its transaction, a push still records its verified
            # signature's nonce, as every other request does (auth.check_signature).
            nonce = pusher.nonce
            await run_in_threadpool(archive.remember_nonce, pusher.device.id, nonce.value,
                                    nonce.at, nonce.window_s)
        raise


async def _push(request: Request, signer: Signer, pusher: Pusher, archive: Archive,
                clock: Clock, settings: Settings) -> Response:
    raw = decode_body(request, await request.body(), settings.max_body_bytes)
    batch = parse_json(PushRequest, raw)
    epoch = await run_in_threadpool(archive.current_epoch)
    device, wait_s = pusher.device, settings.push_turn_wait_s
    if device.state != "active":
        results, order = await run_in_threadpool(archive.final_flush, device, list(batch.ops),
                                                 batch.after_seq, wait_s, pusher.nonce)
        return signer.json({
            "results": [r.wire() for r in results],
            "server_time": iso(clock.now()), "archive_epoch": epoch,
            "wipe_order": signer.wipe_order(order),
        })
    if batch.archive_epoch and batch.archive_epoch != epoch:
        raise epoch_changed()
    if batch.defer:
        stored = await run_in_threadpool(archive.receive, device, list(batch.ops), raw.decode(),
                                         batch.after_seq, wait_s, pusher.nonce)
        metrics.PUSH_OPS.labels("received").inc(len(stored))
        return signer.json({"results": stored, "server_time": iso(clock.now()),
                            "archive_epoch": epoch})
    results = await run_in_threadpool(archive.push, device, list(batch.ops), batch.after_seq,
                                      wait_s, pusher.nonce)
    for status, n in Counter(r.status.value for r in results).items():
        metrics.PUSH_OPS.labels(status).inc(n)
    return signer.json({
        "results": [r.wire() for r in results],
        "server_time": iso(clock.now()), "archive_epoch": epoch,
    })


VERDICTS_PATH = "/v1/push/verdicts"
# The largest VerdictsRequest (MAX_VERDICTS pairs of a 64-character id and a seq) with
# room to spare; app.py caps this route's body at it.
VERDICTS_BODY_BYTES = 256 * 1024


@router.post(VERDICTS_PATH.removeprefix("/v1"), response_model=VerdictsResponse,
             responses=SIGNED_RESPONSE, openapi_extra=request_body(VerdictsRequest))
async def push_verdicts(request: Request, signer: ResponseSigner, device: CurrentDevice,
                        archive: ArchiveDep, settings: SettingsDep) -> Response:
    """What became of ops a push answered `received` (stored, applied after the answer):
    each applied one's result as the push would have answered it, those still waiting,
    and those the archive does not hold (to push again)."""
    raw = decode_body(request, await request.body(), settings.max_body_bytes)
    body = parse_json(VerdictsRequest, raw)
    results, pending, unknown, epoch = await run_in_threadpool(
        archive.verdicts, device, [(op_id, seq) for op_id, seq in body.ops])
    return signer.json({"results": [r.wire() for r in results], "pending": pending,
                        "unknown": unknown, "archive_epoch": epoch})


@router.get("/pull", response_model=PullResponse, responses=SIGNED_RESPONSE)
async def pull(
    signer: ResponseSigner, device: CurrentDevice, archive: ArchiveDep, clock: ClockDep,
    cursor: str = Query("", max_length=200),
    limit: Annotated[int, BeforeValidator(_ascii_int), Query(ge=1, le=5000)] = 2000,
    count: Annotated[int, BeforeValidator(_ascii_int), Query(ge=0, le=1)] = 0,
    shape: Literal["records", "rows"] = "records",
) -> Response:
    """Changes in the device's scope since `cursor`, one page at a time, and the pool's
    rules (公海) the laptop warns its rep by. `shape=rows`: cards and visits as arrays
    of the columns the answer's `columns` names (`customers`, `visits`, `attachments`),
    evictions and plans still in `changes`; agents that do not ask get records."""
    rows = shape == "rows"
    epoch, page = await run_in_threadpool(
        archive.pull_after, device.rep_id, lambda epoch: decode_cursor(cursor, epoch), limit,
        bool(count), device.id, rows)
    metrics.PULL_REQUESTS.inc()
    metrics.PULL_CHANGES.labels("customer").inc(len(page.customers) + len(page.customer_rows))
    metrics.PULL_CHANGES.labels("visit").inc(len(page.visits) + len(page.visit_rows))
    metrics.PULL_CHANGES.labels("evict").inc(len(page.evicted))
    metrics.PULL_CHANGES.labels("plan").inc(len(page.plans))
    changes = (
        [{"kind": "evict", "id": cid} for cid in page.evicted]
        + [{"kind": "customer", "id": r["id"], "record": r} for r in page.customers]
        + [{"kind": "visit", "id": r["id"], "record": r} for r in page.visits]
        + [{"kind": "plan", "id": r["id"], "record": r} for r in page.plans]
    )
    in_rows = {"columns": PULL_COLUMNS, "customers": page.customer_rows,
               "visits": page.visit_rows, "attachments": page.attachments} if rows else {}
    return signer.json({
        "changes": changes, **in_rows, "cursor": encode_cursor(page.last_seq, epoch),
        "more": page.more, "server_time": iso(clock.now()), "archive_epoch": epoch,
        "pool_rules": page.pool_rules,
        **({"remaining": page.remaining} if page.remaining is not None else {}),
    })


@router.post("/reconcile", response_model=ReconcileResponse, responses=SIGNED_RESPONSE,
             openapi_extra=request_body(ReconcileRequest))
async def reconcile(
    request: Request, signer: ResponseSigner, device: CurrentDevice, archive: ArchiveDep,
    settings: SettingsDep,
) -> Response:
    """The archive's revision of each record the device names, within the device's scope;
    absent ids are ones the archive lacks (e.g. lost in a restore)."""
    raw = decode_body(request, await request.body(), settings.max_body_bytes)
    body = parse_json(ReconcileRequest, raw)
    metrics.RECONCILES.inc()
    customers, visits = await run_in_threadpool(
        archive.revisions, device.rep_id, [i for i, _ in body.customers], [i for i, _ in body.visits]
    )
    epoch = await run_in_threadpool(archive.current_epoch)
    return signer.json({"customers": customers, "visits": visits, "archive_epoch": epoch})


@router.get("/whoami", response_model=WhoamiResponse, responses=SIGNED_RESPONSE)
async def whoami(signer: ResponseSigner, device: CurrentDevice, clock: ClockDep,
                 archive: ArchiveDep) -> Response:
    """The authenticated device and rep; a cheap signed round trip for `fieldvault status`."""
    return signer.json({
        "device_id": device.id, "rep_id": device.rep_id, "state": device.state,
        "server_time": iso(clock.now()),
        "archive_epoch": await run_in_threadpool(archive.current_epoch),
    })
