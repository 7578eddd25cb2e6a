"""Admin: the audit log with filters (actor, action prefix, subject, time window), a
page at a time, and "verify chain" (every entry's hash walked from the first); the
archive at a glance (rows, open review work, laptops by risk, backup and replication
health, as /healthz reports it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...archive.store import AuditFilter
from ...rules.access import StaffMember
from ..kit import archive_of, call, page_require, render
from ..menu import N_, Entry
from ..ops_terms import term_of

router = APIRouter()
MENU = [Entry("/admin/audit", N_("Audit log"), "audit.read", order=74),
        Entry("/admin/health", N_("System health"), "ops.read", order=75)]
Auditor = Annotated[StaffMember, page_require("audit.read")]
Ops = Annotated[StaffMember, page_require("ops.read")]
Text = Annotated[str, Query(max_length=200)]
PAGE = 50


@router.get("/admin/audit")
async def audit_log(request: Request, who: Auditor, actor: Text = "", action: Text = "",
                    subject: Text = "", since: Annotated[str, Query(max_length=10)] = "",
                    until: Annotated[str, Query(max_length=10)] = "",
                    page: Annotated[int, Query(ge=0, le=10**6)] = 0) -> Response:
    archive = archive_of(request)
    # Dates from <input type=date>: the window is [since 00:00, until+1 day) in UTC.
    where = AuditFilter(actor or None, action or None, subject or None,
                        f"{since}T00:00:00" if since else None,
                        f"{until}T23:59:59.999999" if until else None)
    found = await call(archive.audit_log, who.name, where, PAGE, page * PAGE)
    verdict = (await call(archive.audit_check, who.name)
               if request.query_params.get("verify") else None)
    filters = {"actor": actor, "action": action, "subject": subject, "since": since,
               "until": until}
    return render(request, "admin_audit.html", entries=found["entries"], total=found["total"],
                  page=page, pages=(found["total"] + PAGE - 1) // PAGE, filters=filters,
                  verdict=verdict)


@router.get("/admin/health")
async def health(request: Request, who: Ops) -> Response:
    glance = await call(archive_of(request).overview, who.name)
    replication = await run_in_threadpool(request.app.state.replication.status)
    return render(request, "admin_health.html", glance=glance, replication=replication,
                  term=term_of(request))
