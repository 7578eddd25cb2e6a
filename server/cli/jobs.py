"""The scheduled jobs, run by hand: what `serve` runs on its schedule."""

from __future__ import annotations

from typing import Annotated

import typer

from schema.output import cli_app, show

from .common import ArchiveOpt, DataOpt, JsonOpt, app, archive_at, call

jobs_app = cli_app(help="The scheduled jobs (serve runs them in one process).")
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("run")
def jobs_run(
    data: DataOpt,
    at: Annotated[str | None, typer.Option(
        "--at", help="ISO time to run the jobs as of, e.g. 2026-12-01T09:00:00Z; default now.")]
        = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Run every due job: scheduled departures, pool returns and warnings. Idempotent:
    a second run as of the same time does nothing."""
    out = call(archive_at(data, archive_url).run_jobs, at)
    if not as_json:
        out = {**out, "departures_applied": ", ".join(out["departures_applied"]),
               "returned_cards": ", ".join(out["returned_cards"])}
    show(out, as_json)
