"""`fieldvault attachments` and `fieldvault inbox scan`: the files waiting in the vault to
be attached to a visit, and taking in what was dropped into the inbox folder
(agent/inbox.py). `fieldvault visit log --attach FILE` attaches files directly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schema.output import cli_app, emit_json, show

from .cli_base import HomeOpt, JsonOpt, vault

inbox_app = cli_app(help="The attachment inbox: a folder where you drop photos and forms.")
ATTACHMENT_COLUMNS = ["sha256", "name", "size", "content_type", "created_at"]


def attachments_command(
    home: HomeOpt,
    visit: Annotated[str | None, typer.Option(help="This visit's attachments instead.")] = None,
    save: Annotated[str | None, typer.Option(help="Write the attachment with this sha256 "
                                             "(or prefix) to --out.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where --save writes (a new file).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Files in the vault waiting to be attached to a visit (from the inbox or an upload);
    attach them with `visit log --attach-id SHA` or in the web UI."""
    from . import attachments

    with vault(home) as store:
        if save:
            if out is None:
                raise typer.BadParameter("--save needs --out FILE")
            ref, data = attachments.read(store, attachments.resolve(store, save))
            attachments.write_new(out, data)
            show(ref, as_json)
            return
        rows = (attachments.of_visit(store.conn, store.get_visit(visit)["id"]) if visit
                else attachments.inbox(store))
        if as_json:
            emit_json(rows)
        else:
            show(rows, False, ATTACHMENT_COLUMNS, title="attachments" if visit else "inbox")


@inbox_app.command("scan")
def inbox_scan(home: HomeOpt, as_json: JsonOpt = False) -> None:
    """Take the files dropped into the inbox folder into the vault (encrypted) and remove
    their plaintext; refused entries (links, special files, over the size limit) stay
    and are listed with why."""
    from . import inbox

    with vault(home) as store:
        result = inbox.scan(store, home)
    if as_json:
        emit_json(result.as_dict())
        return
    for ref in result.added:
        typer.echo(f"added {ref['name']} ({ref['size']} bytes) sha256 {ref['sha256']}")
    for refused in result.refused:
        typer.echo(f"refused {refused['name']}: {refused['reason']}", err=True)
    if not result.added and not result.refused:
        typer.echo(f"nothing in {home / inbox.INBOX_DIR}")
