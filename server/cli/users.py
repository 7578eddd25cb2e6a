"""Staff accounts: `user add`, `user token` (and, from the staff work, list/disable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schema.output import cli_app, fail, show

from .common import ArchiveOpt, DataOpt, JsonOpt, app, archive_at, call

user_app = cli_app(help="Staff accounts: admin, manager, verifier, hr.")
app.add_typer(user_app, name="user")


def read_password(path: Path | None) -> str | None:
    """The first line of the file (`-`: stdin); None without a file (token-only account)."""
    if path is None:
        return None
    try:
        text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        fail(f"cannot read --password-file {path}: {exc.strerror}")
    return text.splitlines()[0] if text else ""


@user_app.command("add")
def user_add(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="admin, manager, verifier or hr.")],
    rep: Annotated[str | None, typer.Option(
        "--rep", help="For a manager: their own rep row; their team is every rep under it.")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="File whose first line is the password ('-': stdin); "
        "never on the command line.")] = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Add a staff account."""
    password = read_password(password_file)
    show(call(archive_at(data, archive_url).add_staff, name, role, rep, password), as_json)


@user_app.command("token")
def user_token(
    data: DataOpt,
    user: Annotated[str, typer.Argument(help="The staff user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="What uses the token (e.g. the ERP).")] = "api",
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create an API token for the staff API (shown once; stored hashed)."""
    token = call(archive_at(data, archive_url).create_staff_token, user, name)
    show({"user": user, "name": name, "token": token}, as_json)
