"""Today, the daily plan, and the language switch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from schema import web
from schema.enums import VisitPurpose

from .. import service
from ..plans import PlanError
from ..store import StoreError
from . import forms
from .context import UI, ui_of

router = APIRouter()


def _ui(request: Request) -> UI:
    return ui_of(request)


@router.get("/")
def today(request: Request) -> Response:
    ui = _ui(request)
    with ui.store() as store:
        day = service.today(store)
    return ui.render(request, "today.html", day=day)


@router.post("/lang")
async def switch_language(request: Request) -> Response:
    form = await request.form()
    lang = forms.text(form, "lang")
    target = forms.text(form, "next")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = RedirectResponse(target, status_code=303)
    if lang in web.LOCALES:
        response.set_cookie(web.LOCALE_COOKIE, lang, max_age=365 * 86400, httponly=True,
                            samesite="strict", path="/")
    return response


@router.get("/plan")
def plan_page(request: Request, day: str = "", error: str = "", saved: int = 0) -> Response:
    ui = _ui(request)
    with ui.store() as store:
        try:
            plan = store.plan_show(day or None)
        except StoreError as exc:
            plan, error = store.plan_show(None), str(exc)
    return ui.render(request, "plan.html", status_code=422 if error else 200, plan=plan,
                     purposes=[p.value for p in VisitPurpose],
                     error=error, saved=saved)


@router.post("/plan")
async def plan_change(request: Request) -> Response:
    """Add, remove or submit: one form per action, the day in each."""
    ui = _ui(request)
    form = await request.form()
    day, action = forms.text(form, "day"), forms.text(form, "action")
    with ui.store() as store:
        try:
            if action == "add":
                store.plan_add(day, forms.text(form, "customer"), forms.text(form, "purpose"),
                               forms.text(form, "time") or None)
            elif action == "remove":
                store.plan_remove(day, forms.text(form, "customer"))
            elif action == "submit":
                store.plan_submit(day)
        except (PlanError, StoreError, ValueError) as exc:
            plan = store.plan_show(None)
            try:
                plan = store.plan_show(day)
            except StoreError:
                pass
            return ui.render(request, "plan.html", status_code=422, plan=plan,
                             purposes=[p.value for p in VisitPurpose],
                             error=str(exc), saved=0)
    if action == "submit":
        ui.saved()
    return RedirectResponse(f"/plan?day={day}&saved=1", status_code=303)
