"""`fieldvault-server`: run the server and administer the archive (a thin layer over it).

One module per command group; each command opens the archive, makes one call and
maps its refusals to one error line (`common.call`). Start-up time counts for admin
commands and `--help`: the archive (sqlite-utils, the pydantic models), the web app
and Litestream support are imported inside the commands that use them, never at
module level. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

from schema.output import run_app

from . import (
    allocation,
    approvals,
    audit,
    customers,
    departures,
    devices,
    jobs,
    plans,
    policy,
    pool,
    reports,
    reps,
    review,
    serve,
    users,
    verify,
    visits,
)
from .common import app

# Imported for their commands, which register themselves on `app` and its groups.
COMMAND_MODULES = (serve, audit, reps, customers, visits, devices, departures, policy, review,
                   users, approvals, verify, plans, reports, pool, jobs, allocation)


def main() -> None:
    run_app(app)


__all__ = ["app", "main"]
