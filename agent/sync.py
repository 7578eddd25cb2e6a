"""The sync client: push the outbox, then pull what changed in the rep's scope.

Push comes first so a visit typed offline reaches the archive before a pull
could evict its customer. Each pushed batch's results and each pulled page
(with its cursor) are committed atomically, so a crash at any point is
repaired by simply syncing again: the server answers replays from its record
of applied operations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schema.clock import iso
from schema.enums import ChangeKind, OpStatus

from . import attachment_sync, attachments, envelopes, keystore, sealed_attachments
from .home import AgentConfig
from .push_result import PushResult
from .store import Store, vault_rows
from .transport import Offline, ServerRefused, Transport, UntrustedResponse
from .wipe import (
    DeviceRevoked,
    destroy_vault,
    forget_device,
    make_receipt,
    save_pending_receipt,
    verify_order,
)

# The server's maximum: half the commits and round trips of 500 (~15% faster push);
# PUSH_MAX_BYTES still bounds a batch of long cards.
PUSH_BATCH = 1000
# Push batches travelling at once: the server applies one while the next arrives.
PUSH_IN_FLIGHT = 2
# Half the server's 8 MiB body limit: 500 long cards in Chinese could exceed it.
PUSH_MAX_BYTES = 4 * 1024 * 1024
# From this many pending operations a push asks the archive to store each batch and
# answer at once, applying its rules after (server/rules/received.py): a laptop back
# from days offline gets its work onto the server first; the verdicts follow
# (`collect_verdicts`). Below it, a push's answer carries the verdicts themselves.
DEFER_FROM = 2000
# Verdicts asked for per request (the server's VerdictsRequest maximum).
VERDICTS_PAGE = 2000
PULL_PAGE = 2000
# A fresh vault's first sync asks for the server's largest pages: fewer round trips and
# commits. Later pulls keep smaller pages (less to fetch again when a link drops).
FIRST_PULL_PAGE = 5000
# Up to this many records, a pending search index is built by the sync itself even
# when the caller would leave it to a detached process (tens of milliseconds).
INLINE_INDEX_RECORDS = 2000
# The first request of a pull, whose answer nothing overlaps (~30 ms of server time).
FIRST_PAGE = 500
MAX_ROUNDS = 100_000  # bounds every loop; ~10^8 records, far beyond any rep's scope
# The server's refusals that mean "hand over, obey the wipe order, wipe": revoked, or
# already wiped (this is a copy or a restored backup of a laptop that sent its receipt).
REVOKED_CODES = ("device_revoked", "device_wiped")


@dataclass
class SyncReport:
    pushed: int = 0
    results: dict[str, int] = field(default_factory=dict)
    pulled_customers: int = 0
    pulled_visits: int = 0
    pulled_plans: int = 0
    evicted: int = 0
    pages: int = 0
    reconciled: dict[str, int] = field(default_factory=dict)
    # Verdicts on operations earlier answered `received`, by status, and how many of
    # those the archive has still to apply.
    verdicts: dict[str, int] = field(default_factory=dict)
    awaiting_verdict: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def moved(self) -> bool:
        """Whether this sync changed anything on the laptop."""
        return bool(self.pushed or self.pulled_customers or self.pulled_visits
                    or self.pulled_plans or self.evicted or self.reconciled or self.verdicts)


Progress = Callable[[str, int], None]


def open_transport(home: Path, config: AgentConfig, timeout: float = 60) -> Transport:
    from schema.signing import b64d

    return Transport(config.server_url, config.device_id, keystore.load_sign_key(home),
                     b64d(config.server_sign_public_key), insecure=config.insecure,
                     timeout=timeout)


def _verified(transport: Transport, order: dict[str, Any], nonce: str | None = None
              ) -> DeviceRevoked:
    """A wipe order we may obey; a forged or replayed one is refused, never obeyed.
    `nonce`: the request's that fetched it (default: the last one on lane 0)."""
    if not verify_order(order, transport.last_nonce if nonce is None else nonce,
                        transport.server_pub_raw, transport.device_id):
        raise UntrustedResponse("ignored a wipe order that is not validly signed for this device")
    return DeviceRevoked(order)


def _within_bytes(ops: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The longest prefix of `ops` whose JSON stays under `limit` bytes (at least one op:
    a single op is far below the server's body limit by the field length rules)."""
    return ops[:len(_dumped_within(ops, limit))]


def _dumped_within(ops: list[dict[str, Any]], limit: int) -> list[bytes]:
    """The JSON of the longest prefix of `ops` that stays under `limit` bytes (at least
    one op), each op dumped once: the batch's body is these joined."""
    size = 0
    dumped: list[bytes] = []
    for op in ops:
        raw = orjson.dumps(op)
        size += len(raw) + 1
        if size > limit and dumped:
            break
        dumped.append(raw)
    return dumped


def push(store: Store, transport: Transport, report: SyncReport,
         batch: int = PUSH_BATCH, progress: Progress | None = None) -> None:
    """Push the outbox. A revoked device's push is its final flush: the server
    quarantines it and answers with a wipe order, raised once all is sent.

    Pipelined: PUSH_IN_FLIGHT batches travel at once, each naming the last op seq of
    the batch before it (`after_seq`), which the server applies first
    (server/rules/push_turns.py); so the server has the next batch as soon as it has
    answered one, while the laptop records that answer and reads and encodes the batch
    after. Answers are recorded one by one, in device order; a crash before an answer
    is recorded is repaired by the replay the next sync makes (the server answers a
    replayed op_id from its record)."""
    order: DeviceRevoked | None = None
    pending = store.outbox_counts()["pending"]
    if progress:
        progress("push-total", pending)
    epoch = store.get_state("archive_epoch") or None
    defer = {"defer": True} if pending >= DEFER_FROM else {}
    stored = store.received_through()  # ops up to here are on the server already

    def prepare(after_seq: int) -> tuple[list[dict[str, Any]], bytes]:
        """The batch after `after_seq` (the last op of the batch sent before it, which
        the server then applies first), with its JSON body (gzipped by the flight's
        thread: zlib lets go of the GIL, so that runs beside this thread's work)."""
        ops = store.pending_ops(batch, after_seq=max(after_seq, stored))
        dumped = _dumped_within(ops, PUSH_MAX_BYTES)
        rest = orjson.dumps({"archive_epoch": epoch, "after_seq": after_seq, **defer})
        return ops[:len(dumped)], b'{"ops":[' + b",".join(dumped) + b"]," + rest[1:]

    # The vault is only touched by this thread; the requests run in the flights' threads.
    flights = _Flights(transport, PUSH_IN_FLIGHT)
    try:
        ops, body = prepare(0)
        for _ in range(MAX_ROUNDS):
            while ops and flights.room():
                flights.send(ops, body)
                ops, body = prepare(ops[-1]["seq"])
            if not flights.busy():
                store.compact_envelopes()  # acknowledged ops need no envelope any more
                if order is not None:
                    raise order
                return
            sent, answer, nonce = flights.take()
            refill = bool(ops)
            if refill:  # the server gets the next batch before this answer is recorded
                flights.send(ops, body)
            if "wipe_order" in answer:
                order = _verified(transport, answer["wipe_order"], nonce)
            _record(store, sent, answer, report)
            if progress:
                progress("push", len(sent))
            if refill:
                ops, body = prepare(flights.last_seq())
    finally:
        flights.discard()
    raise RuntimeError("push did not drain the outbox")


class _Flights:
    """A push's batches in flight, oldest first, each on a connection of its own (a
    transport lane). Answers are taken in the order the batches were sent."""

    def __init__(self, transport: Transport, size: int) -> None:
        self.transport = transport
        self.size = size
        self.pool: ThreadPoolExecutor | None = None
        self.queue: deque[tuple[list[dict[str, Any]], bytes, int, Future[Any]]] = deque()

    def room(self) -> bool:
        return len(self.queue) < self.size

    def busy(self) -> bool:
        return bool(self.queue)

    def last_seq(self) -> int:
        """The last op seq of the newest batch in flight."""
        return int(self.queue[-1][0][-1]["seq"])

    def send(self, ops: list[dict[str, Any]], body: bytes) -> None:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.size,
                                           thread_name_prefix="fieldvault-push")
        used = {lane for _, _, lane, _ in self.queue}
        lane = next(n for n in range(self.size) if n not in used)
        self.queue.append((ops, body, lane, self.pool.submit(self._post, lane, body)))

    def _post(self, lane: int, body: bytes) -> tuple[Any, str]:
        return self.transport.request_on(lane, "POST", "/v1/push", payload=body)

    def take(self) -> tuple[list[dict[str, Any]], Any, str]:
        """The oldest batch and its answer, with the nonce of the request that got it."""
        ops, body, lane, future = self.queue.popleft()
        try:
            answer, nonce = future.result()
        except ServerRefused as exc:
            if exc.code != "push_out_of_order":
                raise
            # The batch before it took longer than the server waits; it is answered now
            # (its answer came first): this batch's turn has come.
            answer, nonce = self._post(lane, body)
        return ops, answer, nonce

    def discard(self) -> None:
        """Drop the batches still in flight (after a failure): their connections are
        shut so their threads end now; a batch waiting for its turn on the server would
        otherwise hold the sync until the server gives up on it. Their ops stay pending
        and are sent again, and answered from the server's record, at the next push."""
        for _, _, lane, _ in self.queue:
            self.transport.abort(lane)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.queue:
            self.transport.resume()
        self.pool = None
        self.queue.clear()


def _record(store: Store, sent: list[dict[str, Any]], answer: dict[str, Any],
            report: SyncReport) -> None:
    """Store one batch's answer in the vault."""
    wire = answer["results"]
    if _all_received(wire, sent):  # stored whole, its rules applied after
        store.mark_received(int(sent[-1]["seq"]))
        report.results["received"] = report.results.get("received", 0) + len(sent)
        report.pushed += len(sent)
        return
    results = [PushResult.from_wire(r) for r in wire]
    if {r.op_id for r in results} != {op["op_id"] for op in sent}:
        raise RuntimeError("server answered for different operations than were sent")
    if any(r.status == OpStatus.received for r in results):
        raise RuntimeError("server stored only part of a batch")
    for status, n in store.apply_results(results).items():
        report.results[status] = report.results.get(status, 0) + n
    report.pushed += len(sent)


def _all_received(wire: Any, sent: list[dict[str, Any]]) -> bool:
    """Whether the server answered `received` for exactly the ops sent, in their order
    (read without a PushResult per op: a stored batch's answer says nothing else)."""
    return (isinstance(wire, list) and len(wire) == len(sent)
            and all(isinstance(r, dict) and r.get("status") == "received"
                    and r.get("op_id") == op["op_id"] for r, op in zip(wire, sent, strict=True)))


def collect_verdicts(store: Store, transport: Transport, report: SyncReport) -> None:
    """Ask what became of the operations the archive stored without applying them yet
    (Store.received_ops), oldest first, and record each verdict as a push's answer is
    recorded. Those it still has to apply wait (the next sync asks again); from the
    first it does not hold at all (restored from an older backup) on, ops are sent
    again."""
    for _ in range(MAX_ROUNDS):
        asked = store.received_ops(VERDICTS_PAGE)
        if not asked:
            return
        answer = transport.request("POST", "/v1/push/verdicts",
                                   payload=orjson.dumps({"ops": asked}))
        results = [PushResult.from_wire(r) for r in answer["results"]]
        pending, unknown = list(answer["pending"]), list(answer["unknown"])
        if {r.op_id for r in results} | set(pending) | set(unknown) != {op for op, _ in asked}:
            raise RuntimeError("server answered for different operations than were asked")
        for status, n in store.apply_results(results).items():
            report.verdicts[status] = report.verdicts.get(status, 0) + n
        store.push_again(unknown)
        if pending or unknown:
            # Stored batches are applied oldest first: the later ones wait as well.
            report.awaiting_verdict = len(store.received_ops(10**9))
            return
    raise RuntimeError("verdicts did not drain")


def pull(store: Store, transport: Transport, report: SyncReport,
         page: int | None = None, progress: Progress | None = None,
         record_time: bool = True, build_index: bool = True) -> str:
    """Pull to the end of the feed; returns the server's time of the last page
    (stored as last_server_time unless the caller stores it itself). `page`: records
    per request (default: FIRST_PULL_PAGE while the search index waits, else PULL_PAGE).
    `build_index=False` leaves a pending search index, and the indexes a first fill
    dropped, to the caller (the commands build them in a detached process:
    agent/search_index.py); searches and queries scan meanwhile."""
    cursor = store.get_state("cursor", "") or ""
    first = not cursor and store.is_empty()
    if first:
        # A first sync: fill the tables, then build the search index once (~3x less
        # local work than tokenizing row by row). Searches scan meanwhile.
        store.defer_search_index()
    else:
        store.restore_indexes()  # a first fill a crash cut short
    if page is None:
        page = FIRST_PULL_PAGE if not store.search_index_ready() else PULL_PAGE
    prefetch = _Prefetch()
    try:
        # An empty vault's first sync can start again from scratch: no fsync per page
        # (Store.first_fill says why nothing acknowledged can be lost).
        with store.first_fill(index_now=build_index) if first else nullcontext():
            server_time = _pull_pages(store, transport, report, cursor, page, progress,
                                      record_time, prefetch)
    finally:
        prefetch.discard()
    # This pull's index, or one an interrupted pull or build left. A small vault's is
    # built here at once (milliseconds): no process to start, nothing to wait for.
    if not store.search_index_ready() and (
            build_index or sum(store.counts().values()) <= INLINE_INDEX_RECORDS):
        store.build_search_index()
    return server_time


class _Prefetch:
    """One request ahead: the next pull page fetched, or the next push batch sent, while
    the current one is written to the vault, so a long sync costs max(network + server,
    vault writes) per page or batch instead of their sum. Pages and answers are still
    recorded one by one, in order; at most one request is ahead, and nothing is ever
    recorded from it before the one before it."""

    def __init__(self, name: str = "fieldvault-pull") -> None:
        self.name = name
        self.pool: ThreadPoolExecutor | None = None
        self.ahead: Future[Any] | None = None

    def start(self, fetch: Callable[[], Any]) -> None:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self.ahead = self.pool.submit(fetch)

    def take(self, fetch: Callable[[], Any]) -> Any:
        ahead, self.ahead = self.ahead, None
        return ahead.result() if ahead is not None else fetch()

    def discard(self) -> None:
        """Wait for (and drop) a request still in flight; called when the pull ends."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.pool, self.ahead = None, None


def _pull_pages(store: Store, transport: Transport, report: SyncReport, cursor: str, page: int,
                progress: Progress | None, record_time: bool, prefetch: _Prefetch) -> str:
    def fetch(at: str, count: bool = False, limit: int = page) -> Callable[[], Any]:
        # In rows: a page goes into the vault as it arrives (an older server ignores
        # `shape` and answers in records, read below as before).
        params: dict[str, Any] = {"cursor": at, "limit": limit, "shape": "rows"}
        if count:  # the server counts what is left, for the progress bar's total
            params["count"] = 1
        return lambda: transport.request("GET", "/v1/pull", params=params)

    for n in range(MAX_ROUNDS):
        # The first page is the one nothing overlaps (the laptop waits for all of it):
        # a small one, so the vault writes start early; the next is fetched meanwhile.
        answer = prefetch.take(fetch(cursor, count=progress is not None and n == 0,
                                     limit=min(page, FIRST_PAGE) if n == 0 else page))
        if progress and "remaining" in answer:
            progress("pull-total", int(answer["remaining"]))
        if answer["more"] and answer["cursor"] != cursor:
            prefetch.start(fetch(answer["cursor"]))
        customers: list[Any] = []
        visits: list[Any] = []
        evicted: list[str] = []
        plans: list[dict[str, Any]] = []
        for change in answer["changes"]:
            kind = change["kind"]
            if kind == ChangeKind.customer:
                customers.append(change["record"])
            elif kind == ChangeKind.visit:
                visits.append(change["record"])
            elif kind == ChangeKind.evict:
                evicted.append(change["id"])
            elif kind == ChangeKind.plan:
                plans.append(change["record"])
        if "columns" in answer:  # in rows
            columns = answer["columns"]
            customers = vault_rows(answer["customers"], columns["customer"], "customer")
            visits = vault_rows(answer["visits"], columns["visit"], "visit")
            store.apply_rows(customers, visits, answer["attachments"], evicted, answer["cursor"],
                             answer["archive_epoch"], plans, answer.get("pool_rules"))
        else:
            store.apply_changes(customers, visits, evicted, answer["cursor"],
                                answer["archive_epoch"], plans, answer.get("pool_rules"))
        report.pulled_customers += len(customers)
        report.pulled_visits += len(visits)
        report.pulled_plans += len(plans)
        report.evicted += len(evicted)
        report.pages += 1
        if progress:
            progress("pull", len(customers) + len(visits) + len(evicted) + len(plans))
        if not answer["more"]:
            if record_time:
                store.set_state("last_server_time", answer["server_time"])
            return str(answer["server_time"])
        if answer["cursor"] == cursor:
            raise RuntimeError("server cursor did not advance")
        cursor = answer["cursor"]
    raise RuntimeError("pull did not finish")


def check_in(home: Path, config: AgentConfig, transport: Transport,
             pin: str | None = None,
             backlog: tuple[int, str | None] | None = None) -> dict[str, Any]:
    """Renew the key lease: the server's permission to keep opening the vault. With
    `backlog` (Store.backlog: unsynced operations and the time of the oldest), the
    check-in also tells the office's fleet view how much work waits on this laptop."""
    from schema.signing import b64d

    body: dict[str, Any] = {"have_epoch": keystore.wrapped_epoch(home)}
    if backlog is not None:
        body["unsynced_ops"], body["oldest_unsynced_at"] = backlog
    answer = transport.request("POST", "/v1/lease", payload=orjson.dumps(body))
    return keystore.install_lease(home, config.device_id, b64d(config.server_sign_public_key),
                                  answer["sealed_lease"], pin=pin)


def hand_over_envelopes(home: Path, transport: Transport,
                        progress: Progress | None = None) -> DeviceRevoked:
    """The final flush of a revoked laptop whose vault does not open (blocked, PIN not
    given): send the sealed envelopes of its outbox, which only the server can open,
    and get the wipe order. Nothing is unlocked on the laptop, and the server sends
    nothing that could unlock it. Replays are harmless: the server takes each op_id
    once, and one already pushed normally is not duplicated. The sealed copies of the
    photos the server lacks go first (`hand_over_attachments`)."""
    hand_over_attachments(home, transport)
    pending = envelopes.read(home)
    for _ in range(MAX_ROUNDS):  # at least one request: an empty hand-over gets the order too
        batch = _within_bytes(pending[:PUSH_BATCH], PUSH_MAX_BYTES)
        answer = transport.request("POST", "/v1/final-flush",
                                   payload=orjson.dumps({"envelopes": batch}))
        order = _verified(transport, answer["wipe_order"])
        if [r["op_id"] for r in answer["results"]] != [e["op_id"] for e in batch]:
            raise RuntimeError("server answered for different envelopes than were sent")
        if progress:
            progress("final-flush", len(batch))
        pending = pending[len(batch):]
        if not pending:
            return order
    raise RuntimeError("final flush did not drain the envelopes")


SEALED_UPLOAD_PATH = "/v1/final-flush/attachments"


def hand_over_attachments(home: Path, transport: Transport) -> int:
    """Send the sealed copies of the photos and forms the server never confirmed, chunk
    by chunk, resuming where the server says it holds; how many it now has whole. A copy
    the server cannot open or whose bytes do not hash to its name (damaged on this disk)
    is skipped: the wipe must not wait forever for it, and its visit's text still
    travels in its envelope."""
    done = 0
    for copy in sealed_attachments.copies(home):
        chunks: dict[int, dict[str, str]] = copy["chunks"]
        offset = 0
        try:
            for _ in range(len(chunks) + 2):  # bounded: one request per chunk, and a probe
                if offset not in chunks:
                    break  # the copy lacks the chunk the server asks for: damaged
                body = {"sha256": copy["sha256"], "size": copy["size"],
                        "content_type": copy["content_type"], "offset": offset,
                        "sealed": chunks[offset]}
                state = transport.request("POST", SEALED_UPLOAD_PATH, payload=orjson.dumps(body))
                if state["complete"]:
                    done += 1
                    break
                if int(state["received"]) == offset:
                    break  # not taken: nothing would change on a retry
                offset = int(state["received"])
        except ServerRefused as exc:
            if exc.status != 400:
                raise
    return done


def fetch_wipe_order(transport: Transport) -> DeviceRevoked:
    """The verified wipe order of a revoked device (raises if forged or replayed)."""
    return _verified(transport, transport.request("GET", "/v1/wipe-order")["wipe_order"])


def revoked_despite_local_error(transport: Transport) -> bool:
    """Whether the server says this device is revoked (or wiped), asked with the device
    key alone when the check-in failed locally (a damaged keyring): a revoked laptop
    must still hand over its envelopes and wipe. False if it is in good standing or
    the question cannot be answered (offline, unsigned answer): the local error stands."""
    try:
        fetch_wipe_order(transport)
    except (Offline, ServerRefused, UntrustedResponse):
        return False
    return True


def obey_wipe(home: Path, transport: Transport, order: dict[str, Any] | None = None,
              receipt: dict[str, Any] | None = None) -> bool:
    """Destroy the local copy for a verified order and send the signed receipt.
    Returns whether the receipt reached the server (else it is kept to resend)."""
    from schema.clock import SystemClock

    if receipt is None:
        assert order is not None
        removed = destroy_vault(home)
        receipt = make_receipt(order, removed, iso(SystemClock().now()), transport.key)
        save_pending_receipt(home, receipt)
    try:
        transport.request("POST", "/v1/wipe-receipt", payload=orjson.dumps(receipt))
    except (Offline, ServerRefused):
        return False
    forget_device(home, receipt)
    return True


def _flushed_whole(store: Store) -> None:
    """Before a final flush's wipe: every attachment the vault's visits name must have
    reached the server (its visit, quarantined, is accepted with it later). Else the
    wipe waits, the vault is kept and the next sync uploads again."""
    left = attachments.not_uploaded(store)
    if left:
        raise ServerRefused(409, "attachments_not_uploaded", (
            f"this laptop was revoked, but {len(left)} attachment(s) of its visits did not "
            "reach the server: its copy is kept, not wiped; sync again"))


def sync(store: Store, transport: Transport, progress: Progress | None = None,
         build_index: bool = True) -> SyncReport:
    """Push everything pending, then pull to the end of the feed. If the archive
    was restored meanwhile (409 epoch_changed), reconcile first, then go again.
    `build_index`: as for `pull`."""
    report = SyncReport()
    try:
        attachment_sync.upload(store, transport)  # before the visits that name them
        try:
            push(store, transport, report, progress=progress)
        except DeviceRevoked:
            _flushed_whole(store)  # the wipe destroys the only copy of what is left
            raise
        server_time = pull(store, transport, report, progress=progress, record_time=False,
                           build_index=build_index)
        collect_verdicts(store, transport, report)
        attachment_sync.download(store, transport)
    except ServerRefused as exc:
        if exc.code in REVOKED_CODES:
            raise fetch_wipe_order(transport) from None
        if exc.code != "epoch_changed":
            raise
        from .reconcile import reconcile

        report.reconciled = reconcile(store, transport)
        store.push_again()  # what the archive stored may be gone with its old epoch
        push(store, transport, report, progress=progress)
        server_time = pull(store, transport, report, progress=progress, record_time=False,
                           build_index=build_index)
        collect_verdicts(store, transport, report)
    # One commit for both: a sync with nothing new then costs a single fsync.
    store.set_states({"last_server_time": server_time, "last_sync_at": iso(store.clock.now())})
    return report
