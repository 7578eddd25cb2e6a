"""The archive's codes the HR, admin and fleet pages show (device states, fleet risks,
where a departing rep's customers go), in the reader's language: `term(code)`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from .kit import gettext_of
from .menu import N_

TERMS = {
    "active": N_("Active"), "blocked": N_("Blocked (offline too long)"),
    "revoked": N_("Revoked"), "wipe_pending": N_("Awaiting wipe"), "wiped": N_("Wiped"),
    "near_block": N_("Near its block deadline"), "ok": N_("OK"),
    "pool": N_("The pool"), "manager": N_("Their manager"),
    "team": N_("Dealt over their team"), "applied": N_("Applied"),
    "scheduled": N_("Scheduled"), "senior": N_("Senior"), "mid": N_("Mid"),
    "junior": N_("Junior"), "accepted": N_("Accepted"), "rejected": N_("Rejected"),
}


def term_of(request: Request) -> Callable[[str | None], str]:
    _ = gettext_of(request)
    return lambda code: _(TERMS[code]) if code in TERMS else (code or "")
