"""Log visit, one visit (its revisions, review and call-back), edit and void."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schema.enums import VisitPurpose
from schema.output import validation_message

from .. import service
from ..store import StoreError
from . import attach, forms
from .context import UI, ui_of

router = APIRouter()


def _ui(request: Request) -> UI:
    return ui_of(request)


def _problem(exc: Exception) -> str:
    return validation_message(exc) if hasattr(exc, "errors") else str(exc)


def _form_page(ui: UI, request: Request, values: dict[str, Any], customer: dict[str, Any] | None,
               error: str = "", visit: dict[str, Any] | None = None) -> Response:
    return ui.render(request, "visit_form.html", status_code=422 if error else 200,
                     values=values, customer=customer, error=error, visit=visit,
                     purposes=[p.value for p in VisitPurpose],
                     offered=attach.offered(ui), attach_limits=attach.limits())


@router.get("/visits/new")
def new_visit(request: Request, customer: str = "") -> Response:
    ui = _ui(request)
    card = None
    if customer:
        with ui.store() as store:
            try:
                card = store.get_customer(customer)
            except StoreError:
                card = None
    now = forms.to_local_input(ui.clock.now().isoformat(), ui.tz)
    return _form_page(ui, request, {"started_at": now, "purpose": "service"}, card)


@router.post("/visits")
async def save_visit(request: Request) -> Response:
    from pydantic import ValidationError

    ui = _ui(request)
    form = await request.form()
    try:
        fields = forms.visit_fields(form, ui.tz)
    except ValueError as exc:
        return _form_page(ui, request, dict(form), None, str(exc))
    with ui.store() as store:
        try:
            visit = service.log_visit(store, fields, await attach.from_form(store, form))
        except (StoreError, ValidationError) as exc:
            card = None
            try:
                card = store.get_customer(fields["customer_id"]) if fields["customer_id"] else None
            except StoreError:
                pass
            return _form_page(ui, request, dict(form), card, _problem(exc))
    ui.saved()
    return RedirectResponse(f"/visits/{visit['id']}?saved=1", status_code=303)


@router.get("/visits/{visit_id}")
def show_visit(request: Request, visit_id: str, saved: int = 0) -> Response:
    ui = _ui(request)
    with ui.store() as store:
        try:
            visit = store.get_visit(visit_id)
        except StoreError as exc:
            return ui.render(request, "refused.html", status_code=404, message=str(exc))
        customer = store.get_customer(visit["customer_id"])
        revisions = service.visit_revisions(store, visit["id"])
    editable = visit["rep_id"] == ui.config.rep_id and visit["status"] in (
        "draft", "submitted", "returned")
    return ui.render(request, "visit.html", visit=visit, customer=customer, saved=saved,
                     revisions=revisions, editable=editable,
                     attachments=attach.of_visit(ui, visit["id"]))


@router.get("/visits/{visit_id}/edit")
def edit_visit_page(request: Request, visit_id: str) -> Response:
    ui = _ui(request)
    with ui.store() as store:
        try:
            visit = store.get_visit(visit_id)
        except StoreError as exc:
            return ui.render(request, "refused.html", status_code=404, message=str(exc))
        customer = store.get_customer(visit["customer_id"])
    values = {**visit, **{k: forms.to_local_input(visit.get(k), ui.tz) for k in forms.VISIT_TIMES}}
    return _form_page(ui, request, values, customer, visit=visit)


@router.post("/visits/{visit_id}")
async def update_visit(request: Request, visit_id: str) -> Response:
    from pydantic import ValidationError

    ui = _ui(request)
    form = await request.form()
    with ui.store() as store:
        try:
            visit = store.get_visit(visit_id)
            service.edit_visit(store, visit["id"], forms.visit_fields(form, ui.tz, partial=True),
                               await attach.from_form(store, form))
        except (StoreError, ValidationError, ValueError) as exc:
            try:
                visit = store.get_visit(visit_id)
                customer = store.get_customer(visit["customer_id"])
            except StoreError:
                return ui.render(request, "refused.html", status_code=404, message=str(exc))
            return _form_page(ui, request, dict(form), customer, _problem(exc), visit=visit)
    ui.saved()
    return RedirectResponse(f"/visits/{visit['id']}?saved=1", status_code=303)


@router.post("/visits/{visit_id}/void")
async def void_visit(request: Request, visit_id: str) -> Response:
    from pydantic import ValidationError

    ui = _ui(request)
    form = await request.form()
    with ui.store() as store:
        try:
            visit = service.void_visit(store, visit_id, forms.text(form, "reason"))
        except (StoreError, ValidationError) as exc:
            return ui.render(request, "refused.html", status_code=422, message=_problem(exc))
    ui.saved()
    return RedirectResponse(f"/visits/{visit['id']}?saved=1", status_code=303)
