"""What waits for a person: conflicts and quarantined operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schema.output import (
    show_rows,
)

from .common import (
    ArchiveOpt,
    DataOpt,
    JsonOpt,
    LimitOpt,
    app,
    archive_at,
)

if TYPE_CHECKING:
    pass


@app.command()
def conflicts(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
              archive_url: ArchiveOpt = None) -> None:
    """Card fields where a rep's edit lost to a newer server value (the rep's value is kept here)."""
    archive = archive_at(data, archive_url)
    show_rows(archive.conflicts, lambda: archive.counts()["conflicts"], as_json=as_json,
              limit=limit, noun="conflicts", columns=["id", "card_no", "customer_name", "field",
                                                      "server_value", "rep_value", "rep_id", "at"])


@app.command()
def quarantine(data: DataOpt, limit: LimitOpt = None, as_json: JsonOpt = False,
               archive_url: ArchiveOpt = None) -> None:
    """Operations held for review instead of being merged (e.g. visits to reassigned customers)."""
    archive = archive_at(data, archive_url)
    show_rows(archive.quarantine, lambda: archive.counts()["quarantine"], as_json=as_json,
              limit=limit, noun="quarantined operations",
              columns=["id", "kind", "entity_id", "rep_id", "reason", "at"])

