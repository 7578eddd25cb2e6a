"""The rep's use cases, shared by the `fieldvault` CLI and the local web UI.

Each function does one thing a rep asks for and raises the library's own
exceptions; the faces only open what they need, call one function and map the
errors to a line (CLI) or a translated message (UI). Heavy modules are imported
inside the functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schema.clock import Clock, SystemClock

from . import keystore, wipe
from .home import CONFIG_FILE, AgentConfig
from .keystore import KeyError_

if TYPE_CHECKING:
    from .store import Store
    from .sync import Progress, SyncReport, Transport


class SyncFailed(Exception):
    """Talking to the server failed at `stage` (check-in, sync, final sync); `cause` is
    the transport's Offline / ServerRefused / UntrustedResponse. Nothing local is lost."""

    def __init__(self, stage: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


class Revoked(Exception):
    """The company revoked this device: what was unsynced was handed over and the local
    copy is wiped. `delivered`: whether the wipe receipt reached the server (else the
    next sync resends it)."""

    def __init__(self, delivered: bool) -> None:
        super().__init__("this device was revoked by the company: its local copy has been wiped")
        self.delivered = delivered


@dataclass
class SyncOutcome:
    report: SyncReport
    needs_attention: int = 0
    returned: int = 0
    pool_warnings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.report.as_dict(), "needs_attention": self.needs_attention,
                "returned": self.returned, "pool_warnings": self.pool_warnings}


def _stage(stage: str) -> Any:
    """A context manager turning the transport's failures into SyncFailed(stage)."""
    from contextlib import contextmanager

    from .transport import Offline, ServerRefused, UntrustedResponse

    @contextmanager
    def guard() -> Any:
        try:
            yield
        except (Offline, ServerRefused, UntrustedResponse) as exc:
            raise SyncFailed(stage, exc) from exc
    return guard()


def _revoke(home: Path, transport: Transport, order: dict[str, Any] | None = None,
            receipt: dict[str, Any] | None = None) -> Revoked:
    from . import sync as sync_mod

    return Revoked(sync_mod.obey_wipe(home, transport, order=order, receipt=receipt))


def _vault_if_it_opens(home: Path, config: AgentConfig, pin: str | None) -> Store | None:
    """A revoked laptop's vault, if it still opens by itself (its push is then the final
    flush), else None: the sealed envelopes go instead and nothing is unlocked. A lease
    past its deadlines is not enforced here (no self-wipe before the hand-over): the
    wipe order that follows destroys everything anyway."""
    from .store import Store, StoreError

    try:
        if keystore.status(home, SystemClock()).state != "active":
            return None
        return Store.open(home, config.rep_id, pin=pin)
    except (KeyError_, StoreError):
        return None


def _backlog(home: Path, config: AgentConfig,
             pin: str | None) -> tuple[int, str | None] | None:
    """The unsynced work the check-in reports for the office's fleet view: pending
    operations and the time of the oldest. Every one of them also has a line in the
    sealed outbox (compacted after each push), so an empty one means none and the
    no-op sync opens nothing more; otherwise the vault is read, if it opens now (a
    blocked laptop reports at its next check-in: None). Laptops that queued work
    before they knew the server's box key have no envelopes for it: they report 0,
    and the count is right again from their next save."""
    from .envelopes import ENVELOPE_FILE

    try:
        if (home / ENVELOPE_FILE).stat().st_size == 0:
            return 0, None
    except FileNotFoundError:
        return 0, None
    store = _vault_if_it_opens(home, config, pin)
    if store is None:
        return None
    try:
        return store.backlog()
    finally:
        store.close()


def _check_in_says_revoked(home: Path, config: AgentConfig, transport: Transport,
                           pin: str | None,
                           backlog: tuple[int, str | None] | None = None) -> bool:
    """Renew the lease; True when the server says this device is revoked (or wiped).
    Other failures raise (SyncFailed, or KeyError_ for a damaged keyring)."""
    from . import sync as sync_mod
    from .transport import ServerRefused

    with _stage("check-in"):
        try:
            sync_mod.check_in(home, config, transport, pin, backlog)
        except ServerRefused as exc:
            if exc.code not in sync_mod.REVOKED_CODES:
                raise
            return True
        except KeyError_:
            # The keyring is damaged, but the device key is its own file: a revoked
            # laptop still hands over its envelopes and wipes.
            if not sync_mod.revoked_despite_local_error(transport):
                raise
            return True
    return False


def sync(home: Path, config: AgentConfig, pin: str | None = None,
         progress: Progress | None = None,
         before_wipe: Callable[[], None] | None = None) -> SyncOutcome:
    """Renew the lease, push local changes, pull the rep's scope. A revoked device
    hands over what is unsynced (a normal push when the vault still opens, else its
    sealed envelopes), obeys the wipe order and raises Revoked. `before_wipe` lets a
    long-running face close its own vault connection first. Raises SyncFailed when the
    server cannot be reached or refuses; StoreError / KeyError_ for local problems."""
    from . import sync as sync_mod
    from .store import Store

    transport = sync_mod.open_transport(home, config)
    try:
        receipt = wipe.pending_receipt(home)
        if receipt is not None:
            raise _revoke(home, transport, receipt=receipt)
        revoked = _check_in_says_revoked(home, config, transport, pin,
                                         _backlog(home, config, pin))
        store = _vault_if_it_opens(home, config, pin) if revoked else Store.open(
            home, config.rep_id, pin=pin)
        order = None
        outcome: SyncOutcome | None = None
        if store is None:
            with _stage("final sync"):
                order = sync_mod.hand_over_envelopes(home, transport, progress).order
        else:
            try:
                with _stage("sync"):
                    # A pending search index (a first sync, or a build a crash cut
                    # short) is built by a detached process once the vault is closed.
                    report = sync_mod.sync(store, transport, progress, build_index=False)
                outcome = SyncOutcome(report)
            except wipe.DeviceRevoked as exc:
                order = exc.order
            finally:
                if outcome is not None:
                    outcome.needs_attention = len(store.needs_attention())
                    outcome.returned = len(store.returned_visits()) + len(store.returned_plans())
                    outcome.pool_warnings = store.pool_warnings_after_sync(report.moved())
                index_pending = outcome is not None and not store.search_index_ready()
                store.close()
                if index_pending:
                    from .search_index import build_detached

                    build_detached(home, pin)
        if order is not None:
            if before_wipe is not None:
                before_wipe()
            raise _revoke(home, transport, order=order)
        assert outcome is not None
        return outcome
    finally:
        transport.close()


# --- state of the device ------------------------------------------------------------

ATTENTION_TOP = 5


def device_state(home: Path, clock: Clock | None = None) -> str:
    """'wiped' (revoked and wiped, or past the wipe deadline), 'blocked', 'active' or
    'none' (not enrolled): which screen a face shows."""
    if (home / wipe.WIPED_MARKER).exists():
        return "wiped"
    try:
        state = keystore.status(home, clock or SystemClock()).state
    except KeyError_:
        return "blocked"
    if state == "none" and (home / CONFIG_FILE).exists():
        return "wiped"  # enrolled, and the key is gone: destroyed at the wipe deadline
    return state


def status(home: Path, config: AgentConfig, store: Store | None,
           clock: Clock | None = None) -> dict[str, Any]:
    """What this device holds, its lease deadlines, what waits to sync and what needs
    the rep (with the vault open when the lease allows it)."""
    lease = keystore.status(home, clock or SystemClock()).as_dict()
    out: dict[str, Any] = {
        "device_id": config.device_id, "rep_id": config.rep_id, "rep_name": config.rep_name,
        "server": config.server_url, "state": lease["state"], "lease": lease,
        "needs_attention": [], "attention": {}}
    if store is not None and lease["state"] == "active":
        out.update(**store.counts(), outbox=store.outbox_counts(),
                   last_sync_at=store.get_state("last_sync_at"),
                   last_server_time=store.get_state("last_server_time"),
                   needs_attention=store.needs_attention(),
                   attention=store.attention(ATTENTION_TOP))
    return out


def conflicts(store: Store) -> list[dict[str, Any]]:
    """The rep's card edits the archive did not keep (the office's value stood)."""
    return store.conflicts()


def dismiss_conflict(store: Store, op_id: str) -> None:
    """The rep has seen a conflict; it leaves the needs-attention list."""
    from .errors import StoreError

    if not store.dismiss_conflict(op_id):
        raise StoreError(f"no open conflict {op_id}: see `fieldvault status` for the open ones")


# --- the rep's day ----------------------------------------------------------------------

def today(store: Store, pool_top: int = 20) -> dict[str, Any]:
    """The Today page: the day's plan, follow-ups due today or overdue (from each
    visit's next appointment), cards nearing the pool, returned visits and plans."""
    from .plans import day_bounds

    day = store.today()
    _, end = day_bounds(day)
    # A follow-up is open while no later visit to that customer exists.
    rows = store.conn.execute(
        "SELECT v.id, v.customer_id, v.next_at, v.next_place, v.next_content, c.name, "
        "c.card_no FROM visits v JOIN customers c ON c.id = v.customer_id "
        "WHERE v.rep_id = ? AND v.status != 'void' AND v.next_at IS NOT NULL "
        "AND v.next_at != '' AND v.next_at < ? AND NOT EXISTS (SELECT 1 FROM visits w "
        "WHERE w.customer_id = v.customer_id AND w.status != 'void' "
        "AND w.started_at > v.started_at) ORDER BY v.next_at LIMIT 100",
        (store.rep_id, end)).fetchall()
    start, _ = day_bounds(day)
    followups = [{"visit_id": r[0], "customer_id": r[1], "next_at": r[2], "place": r[3],
                  "content": r[4], "name": r[5], "card_no": r[6],
                  "overdue": r[2] < start} for r in rows]
    return {"day": day, "plan": store.plan_show(day), "followups": followups,
            "pool": store.pool_deadlines(True, None, pool_top),
            "returned_visits": store.returned_visits(), "returned_plans": store.returned_plans()}


def log_visit(store: Store, fields: dict[str, Any], attach: Iterable[str] = ()) -> dict[str, Any]:
    """Validate and save a visit on the laptop (no network): it goes up at the next
    sync. `fields` as typed; empty optional times are left out. `attach`: sha256 of
    files already in the vault (agent/attachments.py)."""
    from schema.models import VisitCreate

    data = {k: v for k, v in fields.items() if v is not None and v != "" or k in (
        "summary",)}
    data["customer_id"] = store.get_customer(str(fields.get("customer_id", "")))["id"]
    data.setdefault("started_at", store.clock.now())
    return store.log_visit(VisitCreate.model_validate(data), attach)


def edit_visit(store: Store, ref: str, fields: dict[str, Any],
               attach: Iterable[str] = ()) -> dict[str, Any]:
    from schema.models import VisitPatch

    return store.edit_visit(ref, VisitPatch.model_validate(fields), attach)


def void_visit(store: Store, ref: str, reason: str) -> dict[str, Any]:
    from schema.models import VisitVoid

    return store.void_visit(ref, VisitVoid.model_validate({"reason": reason}))


def customer_card(store: Store, ref: str, visits: int | None = None) -> dict[str, Any]:
    """One card with its pool status and its visits (any author), newest first."""
    card = store.get_customer(ref)
    card.update(store.pool_status(card))
    card["visits"] = store.list_visits(card["id"], visits)
    return card


def edit_customer(store: Store, ref: str, fields: dict[str, Any]) -> dict[str, Any]:
    from schema.models import CustomerPatch

    return store.edit_customer(ref, CustomerPatch.model_validate(fields))


def add_customer(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    from schema.models import CustomerCreate

    return store.add_customer(CustomerCreate.model_validate(fields))


def search_customers(store: Store, term: str | None = None, grade: str | None = None,
                     idle_days: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Customers by the vault's FTS index (Chinese and English; a term under three
    characters, which trigrams cannot index, by LIKE), optionally of one grade and
    not visited for `idle_days` days; at most `limit`, best match (else name) first."""
    from datetime import timedelta

    from schema.clock import iso

    source, params, order = store._customer_match(term)
    where: list[str] = []
    if grade:
        where.append("customers.grade = ?")
        params.append(grade)
    if idle_days:
        where.append("(customers.last_served_at IS NULL OR customers.last_served_at <= ?)")
        params.append(iso(store.clock.now() - timedelta(days=idle_days)))
    if where:
        source += (" AND " if " WHERE " in source else " WHERE ") + " AND ".join(where)
    short = bool((term or "").strip()) and order == "name"
    # A short term scans: stop at the first `limit` matches instead of sorting them
    # all by name (a common character matches thousands), then sort those.
    sql = f"SELECT customers.* {source} " + ("" if short else f"ORDER BY {order} ") + "LIMIT ?"
    rows = list(store._stream(sql, [*params, limit]))
    return sorted(rows, key=lambda r: r["name"]) if short else rows


# --- the pool (online) ------------------------------------------------------------------

def pool_browse(home: Path, config: AgentConfig, search: str | None = None, limit: int = 50,
                offset: int = 0) -> dict[str, Any]:
    from . import pool
    from .sync import open_transport

    transport = open_transport(home, config)
    try:
        return pool.browse(transport, search, limit, offset)
    finally:
        transport.close()


def pool_claim(home: Path, config: AgentConfig, store: Store, customer: str) -> dict[str, Any]:
    """Claim from the pool (the vault is open first: a vault that will not open claims
    nothing) and bring the card down. A failed bring-down leaves the claim standing
    (the next sync brings it): `bring_down_failed` then says why."""
    from . import pool
    from .sync import open_transport
    from .transport import Offline, ServerRefused, UntrustedResponse

    transport = open_transport(home, config)
    try:
        claimed = pool.claim(transport, customer)
        try:
            report = pool.bring_down(store, transport)
        except (Offline, ServerRefused, UntrustedResponse) as exc:
            return {**claimed, "bring_down_failed": str(exc)}
        return {**claimed, "pulled_customers": report.pulled_customers,
                "pulled_visits": report.pulled_visits}
    finally:
        transport.close()


# --- a card's ownership history (online) -------------------------------------------------

def customer_ownership(home: Path, config: AgentConfig, customer_id: str,
                       timeout: float = 60) -> list[dict[str, Any]]:
    """Who served the card when (the vault keeps only the current owner): asked of the
    server, for the card's current owner only. Offline raises Offline saying so; the UI
    passes a short timeout so a card page never waits long on a server that is down."""
    from . import ownership
    from .sync import open_transport
    from .transport import Offline

    transport = open_transport(home, config, timeout)
    try:
        return ownership.history(transport, customer_id)
    except Offline as exc:
        raise Offline(f"the ownership history needs the network: try again when you are "
                      f"online ({exc})") from exc
    finally:
        transport.close()


def visit_revisions(store: Store, visit_id: str) -> list[dict[str, Any]]:
    """The changes to a visit still on this laptop (waiting, refused or held), oldest
    first; what the server accepted is its revision number `rev`."""
    import orjson

    rows = store.conn.execute(
        "SELECT seq, kind, at, state, reason, data FROM outbox WHERE entity_id = ? ORDER BY seq",
        (visit_id,)).fetchall()
    return [{"seq": r[0], "kind": r[1], "at": r[2], "state": r[3], "reason": r[4] or "",
             "fields": sorted(orjson.loads(r[5]))} for r in rows]
