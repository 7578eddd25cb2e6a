"""Sync (state, needs-attention, the lease, "Sync now") and the pool (online)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .. import service
from ..store import StoreError
from ..transport import Offline, ServerRefused, UntrustedResponse
from . import forms
from .context import UI, _, ui_of

router = APIRouter()


def _ui(request: Request) -> UI:
    return ui_of(request)


@router.get("/sync")
def sync_page(request: Request, requested: int = 0) -> Response:
    ui = _ui(request)
    with ui.store() as store:
        info = service.status(ui.home, ui.config, store, ui.clock)
    return ui.render(request, "sync.html", info=info, requested=requested)


@router.get("/sync/state")
def sync_state(request: Request) -> Response:
    """What the page's script polls: the runner's state and the device's."""
    ui = _ui(request)
    state = ui.runner.snapshot() if ui.runner else {}
    return JSONResponse({**state, "device": ui.state()})


@router.post("/sync/now")
def sync_now(request: Request) -> Response:
    """Ask the background sync to run now; the page does not wait for it."""
    ui = _ui(request)
    if ui.runner is not None:
        ui.runner.sync_now()
    return RedirectResponse("/sync?requested=1", status_code=303)


@router.post("/sync/conflicts/{op_id}/dismiss")
def dismiss_conflict(request: Request, op_id: str) -> Response:
    """The rep has seen that the office's value was kept over theirs."""
    ui = _ui(request)
    with ui.store() as store:
        try:
            service.dismiss_conflict(store, op_id)
        except StoreError:
            pass  # already dismissed (a second click, another tab): the page shows the rest
    return RedirectResponse("/sync", status_code=303)


@router.get("/pool")
def pool_page(request: Request, q: str = "", offset: int = 0) -> Response:
    ui = _ui(request)
    page, problem = None, ""
    try:
        page = service.pool_browse(ui.home, ui.config, q or None, 50, max(0, offset))
    except Offline:
        problem = ui.gettext(request)(_("The pool needs the network: try again when you are online."))
    except (ServerRefused, UntrustedResponse) as exc:
        problem = str(getattr(exc, "message", exc))
    return ui.render(request, "pool.html", page=page, q=q, problem=problem)


@router.post("/pool/claim")
async def pool_claim(request: Request) -> Response:
    ui = _ui(request)
    form = await request.form()
    customer = forms.text(form, "customer_id")
    try:
        with ui.store() as store:
            claimed = service.pool_claim(ui.home, ui.config, store, customer)
    except Offline:
        return ui.render(request, "pool.html", status_code=503, page=None, q="",
                         problem=ui.gettext(request)(_(
                             "Claiming needs the network: try again when you are online.")))
    except (ServerRefused, UntrustedResponse, StoreError) as exc:
        try:
            page = service.pool_browse(ui.home, ui.config, None, 50, 0)
        except (Offline, ServerRefused, UntrustedResponse):
            page = None
        return ui.render(request, "pool.html", status_code=409, page=page, q="",
                         problem=str(getattr(exc, "message", exc)))
    if "bring_down_failed" in claimed:  # the claim stands; the card comes at the next sync
        if ui.runner is not None:
            ui.runner.sync_now()
        return ui.render(request, "pool.html", page=None, q="", problem=ui.gettext(request)(_(
            "Claimed. Its card could not come down yet: it arrives with the next sync.")))
    return RedirectResponse(f"/customers/{claimed['customer_id']}?saved=1", status_code=303)
