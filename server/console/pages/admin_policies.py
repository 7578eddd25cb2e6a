"""Admin: the company's policies (offline grace and PIN, the pool's rules and claim
caps, call-back sampling), each change previewed first: how many customers would be
due back in the pool or warned, how many laptops would be past a new block time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ...rules.access import StaffMember
from ...rules.policies import CallbackPolicy, PoolPolicy
from ..kit import PREFIX, Refusal, archive_of, call, done_note, page_require, redirect, render
from ..menu import N_, Entry

router = APIRouter()
MENU = [Entry("/admin/policies", N_("Policies"), "policy.set", order=71)]
Admin = Annotated[StaffMember, page_require("policy.set")]
NOTES = {"offline": N_("Offline policy saved: leases issued from now on follow it."),
         "pool": N_("Pool rules saved."), "callback": N_("Call-back sampling saved.")}
POOL_FIELDS = list(PoolPolicy.__dataclass_fields__)
CALLBACK_FIELDS = list(CallbackPolicy.__dataclass_fields__)
LABELS = {
    "return_days_a": N_("Grade A: days without a visit before returning to the pool"),
    "return_days_b": N_("Grade B: days without a visit before returning to the pool"),
    "return_days_c": N_("Grade C: days without a visit before returning to the pool"),
    "warn_days": N_("Warn the owner this many days before"),
    "grace_days": N_("Grace days for visits not yet synced"),
    "claims_per_day": N_("Claims per rep per day"),
    "cap_senior": N_("Customers a senior rep may own"),
    "cap_mid": N_("Customers a mid rep may own"),
    "cap_junior": N_("Customers a junior rep may own"),
    "reclaim_cooldown_days": N_("Days before the previous owner may claim it back"),
    "sample_pct": N_("Share of each rep's visits called back, in percent"),
    "dispute_threshold_pct": N_("Above this dispute rate, in percent, call every visit"),
    "dispute_min_calls": N_("Calls needed before a rep's rate counts"),
}


def _ints(form: Any, names: list[str], current: dict[str, int]) -> dict[str, int]:
    """The fields of the form that differ from the policy in force."""
    out = {}
    for key in names:
        text = str(form.get(key, "")).strip()
        if not text:
            continue
        if not text.isdigit() or len(text) > 9:
            raise Refusal(400, N_("%(field)s must be a whole number."), field=key)
        if int(text) != current[key]:
            out[key] = int(text)
    return out


def _hours(text: str) -> float | None:
    try:
        value = float(text) if text.strip() else None
    except ValueError:
        raise Refusal(400, N_("%(field)s must be a number."), field="block_hours") from None
    if value is not None and not 0 < value <= 8760:
        raise Refusal(400, N_("%(field)s must be a number."), field="block_hours")
    return value


async def _page(request: Request, who: StaffMember, **extra: Any) -> Response:
    archive = archive_of(request)
    return render(request, "admin_policies.html", offline=await call(archive.policy),
                  pool=await call(archive.pool_policy),
                  callback=await call(archive.callback_policy, who.name),
                  pool_fields=POOL_FIELDS, callback_fields=CALLBACK_FIELDS, labels=LABELS,
                  note=done_note(request, NOTES), **extra)


@router.get("/admin/policies")
async def policies(request: Request, who: Admin) -> Response:
    return await _page(request, who, preview=None, proposed=None)


@router.post("/admin/policies/preview")
async def preview(request: Request, who: Admin) -> Response:
    form = await request.form()
    archive = archive_of(request)
    changes = _ints(form, POOL_FIELDS, await call(archive.pool_policy))
    hours = _hours(str(form.get("block_hours", "")))
    seen = await call(archive.policy_preview, who.name, changes, hours)
    return await _page(request, who, preview=seen,
                       proposed={"pool": changes, "block_hours": hours})


@router.post("/admin/policies/pool")
async def save_pool(request: Request, who: Admin) -> Response:
    form = await request.form()
    archive = archive_of(request)
    changes = _ints(form, POOL_FIELDS, await call(archive.pool_policy))
    if changes:
        await call(archive.set_pool_policy, changes, who.name)
    hours = _hours(str(form.get("block_hours", "")))
    if hours is not None:
        await call(archive.set_offline_policy, who.name, hours)
    return redirect(f"{PREFIX}/admin/policies?done=pool")


@router.post("/admin/policies/offline")
async def save_offline(request: Request, who: Admin,
                       block_hours: Annotated[float, Form(gt=0, le=8760)],
                       wipe_days: Annotated[float, Form(gt=0, le=3650)],
                       require_pin: Annotated[str, Form(max_length=3)] = "") -> Response:
    await call(archive_of(request).set_offline_policy, who.name, block_hours, wipe_days,
               require_pin == "on")
    return redirect(f"{PREFIX}/admin/policies?done=offline")


@router.post("/admin/policies/callback")
async def save_callback(request: Request, who: Admin) -> Response:
    form = await request.form()
    archive = archive_of(request)
    changes = _ints(form, CALLBACK_FIELDS, await call(archive.callback_policy, who.name))
    if changes:
        await call(archive.set_callback_policy, changes, who.name)
    return redirect(f"{PREFIX}/admin/policies?done=callback")
