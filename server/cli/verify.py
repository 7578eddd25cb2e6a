"""Call-back verification (电话回访): the verifier's queue, recording a call, per-rep
figures and the policy that picks visits."""

from __future__ import annotations

from typing import Annotated

import typer

from schema.output import cli_app, show, show_rows

from .common import ArchiveOpt, DataOpt, JsonOpt, LimitOpt, app, archive_at, call, visit_app

verify_app = cli_app(help="Call-back verification (电话回访): queue, figures, policy.")
policy_app = cli_app(help="Which visits are called back.")
app.add_typer(verify_app, name="verify")
verify_app.add_typer(policy_app, name="policy")

AsOpt = Annotated[str | None, typer.Option(
    "--by", help="As this staff user (a manager sees their team, a verifier their own "
    "calls) [default: the archive's administrator]", show_default=False)]


@verify_app.command("queue")
def verify_queue(data: DataOpt, by: AsOpt = None, limit: LimitOpt = None,
                 as_json: JsonOpt = False, archive_url: ArchiveOpt = None) -> None:
    """Visits to call back, oldest first, with what the call needs."""
    archive = archive_at(data, archive_url)
    rows = call(archive.callback_queue, by)
    show_rows(lambda n: rows[:n] if n else rows, lambda: len(rows), as_json=as_json, limit=limit,
              noun="visits to call back",
              columns=["id", "customer_name", "phone", "decision_maker", "started_at", "purpose",
                       "summary", "rep_name", "callback_reason"])


@visit_app.command("verify")
def visit_verify(
    data: DataOpt,
    visit_id: Annotated[str, typer.Argument(help="The visit's id.")],
    result: Annotated[str, typer.Option("--result", help="verified or disputed.")],
    by: Annotated[str, typer.Option("--by", help="The verifier who called.")],
    note: Annotated[str, typer.Option("--note", help="What the customer said "
                                      "(required for disputed).")] = "",
    as_json: JsonOpt = False, archive_url: ArchiveOpt = None,
) -> None:
    """Record a call-back's outcome; a dispute goes to the rep's manager."""
    show(call(archive_at(data, archive_url).record_callback, visit_id, result, note, by), as_json)


@verify_app.command("figures")
def verify_figures(
    data: DataOpt,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep (id or name).")] = None,
    by: AsOpt = None, as_json: JsonOpt = False, archive_url: ArchiveOpt = None,
) -> None:
    """Per rep: calls made, verified and disputed, and their shares."""
    figures = call(archive_at(data, archive_url).callback_figures, by, rep)
    if as_json:
        show(figures, True)
        return
    show(figures["reps"], False, ["rep_name", "called", "verified", "disputed", "share_verified",
                                  "share_disputed", "pending"], title="call-backs per rep")
    if figures["throughput"]:
        show(figures["throughput"], False, ["day", "by", "calls"], title="calls per day")


@policy_app.command("show")
def verify_policy_show(data: DataOpt, by: AsOpt = None, as_json: JsonOpt = False,
                       archive_url: ArchiveOpt = None) -> None:
    """The call-back policy in force."""
    show(call(archive_at(data, archive_url).callback_policy, by), as_json)


@policy_app.command("set")
def verify_policy_set(
    data: DataOpt,
    sample_pct: Annotated[int | None, typer.Option(
        "--sample-pct", help="Share of each rep's other visits called, 0-100 (default 20).")] = None,
    dispute_threshold_pct: Annotated[int | None, typer.Option(
        "--dispute-threshold-pct", help="Above this dispute rate every visit of the rep is "
        "called, 0-100 (default 20).")] = None,
    dispute_min_calls: Annotated[int | None, typer.Option(
        "--dispute-min-calls", help="Calls a rep needs before the rate counts (default 5).")] = None,
    by: AsOpt = None, as_json: JsonOpt = False, archive_url: ArchiveOpt = None,
) -> None:
    """Change the call-back policy (audited); it applies to visits submitted from now on."""
    changes = {k: v for k, v in (("sample_pct", sample_pct),
                                 ("dispute_threshold_pct", dispute_threshold_pct),
                                 ("dispute_min_calls", dispute_min_calls)) if v is not None}
    show(call(archive_at(data, archive_url).set_callback_policy, changes, by), as_json)
