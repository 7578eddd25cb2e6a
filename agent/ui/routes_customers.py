"""Customers: instant search (the vault's FTS index), the card, edits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from schema.enums import Grade
from schema.fields import CUSTOMER_EDITABLE_FIELDS
from schema.output import validation_message

from .. import service
from ..store import StoreError
from ..transport import Offline, ServerRefused, UntrustedResponse
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
    mine = data.get("owner_rep_id") == ui.config.rep_id
    owners, owners_problem = (_ownership(ui, data["id"]) if mine else (None, ""))
    return ui.render(request, "customer.html", card=data, saved=saved, error=error,
                     fields=CUSTOMER_EDITABLE_FIELDS, grades=[g.value for g in Grade],
                     mine=mine, owners=owners, owners_problem=owners_problem)


# The card page asks the server for the ownership history while it renders: a server
# that is down or hung must cost the page at most about this long (connect + read).
OWNERSHIP_TIMEOUT_S = 1.0


def _ownership(ui: UI, customer_id: str) -> tuple[list[dict[str, Any]] | None, str]:
    """(periods, "") online; (None, "") offline (the page says it is shown when online);
    (None, the server's refusal) when it answered no."""
    try:
        return service.customer_ownership(ui.home, ui.config, customer_id,
                                          OWNERSHIP_TIMEOUT_S), ""
    except Offline:
        return None, ""
    except ServerRefused as exc:
        return None, exc.message
    except (UntrustedResponse, StoreError) as exc:
        return None, str(exc)


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
