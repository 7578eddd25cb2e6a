"""Staff accounts (`user ...`): add, list, disable, passwords and API tokens.

Run from the server's shell these act as the operator, who holds the archive anyway
(how the first admin is made); `--by USER` makes a staff user's role decide, as the
staff API does. Passwords come from a file or stdin, never from the command line
(argv is visible to every user of the machine and kept in shell histories).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schema.output import cli_app, fail, show

from .common import ArchiveOpt, DataOpt, JsonOpt, app, archive_at, call

user_app = cli_app(help="Staff accounts: admin, manager, verifier, hr.")
app.add_typer(user_app, name="user")

UserArg = Annotated[str, typer.Argument(help="The staff user (name or id).")]
ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Act as this staff user (an admin); default: the operator at the server.")]
STAFF_COLUMNS = ["name", "role", "rep_id", "tokens", "has_password", "locked_until",
                 "disabled_at"]


def read_password(path: Path | None) -> str | None:
    """The first line of the file (`-`: stdin); None without a file (token-only account)."""
    if path is None:
        return None
    try:
        text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        fail(f"cannot read --password-file {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"--password-file {path} is not UTF-8 text")
    return text.splitlines()[0] if text else ""


PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", help="File whose first line is the password ('-': stdin); "
    "never on the command line.")]


@user_app.command("add")
def user_add(
    data: DataOpt,
    name: Annotated[str, typer.Option("--name", help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="admin, manager, verifier or hr.")],
    rep: Annotated[str | None, typer.Option(
        "--rep", help="For a manager: their own rep row; their team is every rep under it.")] = None,
    password_file: PasswordFileOpt = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Add a staff account (without --password-file: API tokens only, no login)."""
    password = read_password(password_file)
    show(call(archive_at(data, archive_url).add_staff, name, role, rep, password, by), as_json)


@user_app.command("list")
def user_list(data: DataOpt, by: ByOpt = None, as_json: JsonOpt = False,
              archive_url: ArchiveOpt = None) -> None:
    """Every staff account: role, live tokens, lockout, disabled (never a password hash)."""
    show(call(archive_at(data, archive_url).list_staff, by), as_json, STAFF_COLUMNS)


@user_app.command("disable")
def user_disable(data: DataOpt, user: UserArg, by: ByOpt = None, as_json: JsonOpt = False,
                 archive_url: ArchiveOpt = None) -> None:
    """Disable an account: no more logins, its tokens revoked. Not the last admin."""
    show(call(archive_at(data, archive_url).disable_staff, user, by), as_json)


@user_app.command("password")
def user_password(
    data: DataOpt,
    user: UserArg,
    password_file: Annotated[Path, typer.Option(
        "--password-file", help="File whose first line is the new password ('-': stdin).")],
    by: ByOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Set a new password; it also unlocks an account locked by failed logins."""
    password = read_password(password_file) or ""
    show(call(archive_at(data, archive_url).set_password, user, password, by), as_json)


@user_app.command("token")
def user_token(
    data: DataOpt,
    user: UserArg,
    name: Annotated[str, typer.Option("--name", help="What uses the token (e.g. the ERP).")] = "api",
    by: ByOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Create an API token for the staff API (shown once; stored hashed)."""
    token = call(archive_at(data, archive_url).create_staff_token, user, name, by)
    show({"user": user, "name": name.strip(), "token": token}, as_json)


@user_app.command("tokens")
def user_tokens(data: DataOpt, user: UserArg, by: ByOpt = None, as_json: JsonOpt = False,
                archive_url: ArchiveOpt = None) -> None:
    """A user's tokens, revoked ones too, with when each was last used (to the minute)
    and when it expires (90 days after it was issued)."""
    rows = call(archive_at(data, archive_url).staff_tokens, user, by)
    show(rows, as_json, ["name", "created_at", "last_used_at", "revoked_at", "expires_at"])


@user_app.command("revoke-token")
def user_revoke_token(
    data: DataOpt,
    user: UserArg,
    name: Annotated[str, typer.Option("--name", help="The token's name (every live one of it).")],
    by: ByOpt = None,
    as_json: JsonOpt = False,
    archive_url: ArchiveOpt = None,
) -> None:
    """Revoke a user's tokens of that name: they stop working at once."""
    count = call(archive_at(data, archive_url).revoke_staff_token, user, name, by)
    show({"user": user, "name": name, "revoked": count}, as_json)
