"""Customers: instant search (the vault's FTS index), the card, edits."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from schema.enums import Grade
from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.output import validation_message

from .. import service
from ..store import StoreError
from . import forms
from .context import UI, ui_of

router = APIRouter()
PAGE = 50


def _ui(request: Request) -> UI:
    return ui_of(request)


def _idle(days: str) -> int | None:
    return int(days) if days.isdigit() and 0 < int(days) < 100_000 else None


@router.get("/customers")
def customers(request: Request, q: str = "", grade: str = "", idle: str = "") -> Response:
    ui = _ui(request)
    grade = grade if grade in {g.value for g in Grade} else ""
    with ui.store() as store:
        rows = service.search_customers(store, q, grade or None, _idle(idle), PAGE)
    return ui.render(request, "customers.html", rows=rows, q=q, grade=grade, idle=idle,
                     grades=[g.value for g in Grade], page=PAGE)


@router.get("/customers/rows")
def customer_rows(request: Request, q: str = "", grade: str = "", idle: str = "") -> Response:
    """The result rows alone, for search-as-you-type (ui.js swaps them in)."""
    ui = _ui(request)
    grade = grade if grade in {g.value for g in Grade} else ""
    with ui.store() as store:
        rows = service.search_customers(store, q, grade or None, _idle(idle), PAGE)
    return ui.render(request, "_customer_rows.html", rows=rows, page=PAGE)


@router.get("/api/customers")
def suggest(request: Request, q: str = "") -> Response:
    """Suggestions for the customer fields of the visit and plan forms."""
    ui = _ui(request)
    with ui.store() as store:
        rows = service.search_customers(store, q, None, None, 10) if q.strip() else []
    return JSONResponse([{"id": r["id"], "label": f"{r['name']} {r['card_no']}".strip()}
                         for r in rows])


@router.get("/customers/{customer_id}")
def card(request: Request, customer_id: str, saved: int = 0, error: str = "") -> Response:
    ui = _ui(request)
    with ui.store() as store:
        try:
            data = service.customer_card(store, customer_id)
        except StoreError as exc:
            return ui.render(request, "refused.html", status_code=404, message=str(exc))
    return ui.render(request, "customer.html", card=data, saved=saved, error=error,
                     fields=CUSTOMER_EDITABLE_FIELDS, grades=[g.value for g in Grade],
                     mine=data.get("owner_rep_id") == ui.config.rep_id)


@router.post("/customers/{customer_id}")
async def edit(request: Request, customer_id: str) -> Response:
    from pydantic import ValidationError

    ui = _ui(request)
    form = await request.form()
    with ui.store() as store:
        try:
            current = store.get_customer(customer_id)
            changes = {k: v for k, v in forms.customer_fields(form).items() if v != (current[k] or "")}
            if changes:
                service.edit_customer(store, current["id"], changes)
        except (StoreError, ValidationError) as exc:
            message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            try:
                data = service.customer_card(store, customer_id)
            except StoreError:
                return ui.render(request, "refused.html", status_code=404, message=message)
            data.update(forms.customer_fields(form))
            return ui.render(request, "customer.html", status_code=422, card=data, saved=0,
                             error=message, fields=CUSTOMER_EDITABLE_FIELDS,
                             grades=[g.value for g in Grade],
                             mine=data.get("owner_rep_id") == ui.config.rep_id)
    if changes:
        ui.saved()
    return RedirectResponse(f"/customers/{current['id']}?saved=1", status_code=303)
