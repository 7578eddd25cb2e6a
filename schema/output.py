"""Output conventions shared by both CLIs: `--json` prints one JSON document;
failures print one line on stderr that says what to do, and exit non-zero."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

if TYPE_CHECKING:
    import typer

# rich is imported only when a table is printed, and typer only by what builds or runs
# a command line: both cost start-up time, and `fieldvault sync` (what a timer runs)
# is dispatched without typer (agent/cli_main.py) yet prints through this module.


def cli_app(**settings: Any) -> typer.Typer:
    """A Typer app (or sub-app) with both CLIs' settings: plain click help instead of
    rich's, so `--help` starts without importing rich; plain tracebacks (rich's cost
    start-up time, and with locals shown they could print a vault key on a terminal)."""
    import typer

    return typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       pretty_exceptions_enable=False, **settings)


def emit_json(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit `code`. SystemExit rather than typer.Exit: inside a
    command it passes through click unchanged (same exit code, see run_app), and the
    typer-less `fieldvault sync` (agent/cli_main.py) fails the same way."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)


def _click_error(name: str) -> type[Exception]:
    """click's exception class `name`, from whichever click typer runs on (it may vendor one)."""
    import typer

    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def run_app(app: typer.Typer) -> NoReturn:
    """Run a CLI so that a usage mistake (unknown option, bad --purpose, missing
    --name) is, like every other failure, one `error:` line on stderr. It exits 1:
    click's usual 2 would read as "server unreachable" to scripts calling `fieldvault`."""
    try:
        code = app(standalone_mode=False)
    except _click_error("ClickException") as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        message = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        sys.stderr.write(f"error: {message}{hint}\n")
        raise SystemExit(1) from None
    except Exception as exc:  # only a full disk is handled here
        exit_if_disk_full(exc)
        raise
    raise SystemExit(code if isinstance(code, int) else 0)


def exit_if_disk_full(exc: Exception) -> None:
    """Exit 1 with one line when `exc` is a write that failed for lack of space; else
    return (the caller re-raises)."""
    problem = disk_full(exc)
    if problem is not None:
        sys.stderr.write(f"error: {problem}: free some space, then run the command again "
                         "(this change was not saved; nothing saved before is lost)\n")
        raise SystemExit(1) from None


def emit_json_rows(rows: Iterable[Any]) -> None:
    """A JSON array written row by row, so a listing is never held whole as text."""
    out = sys.stdout
    first = True
    for row in rows:
        # JSON text has no raw newlines inside strings: re-indenting by lines is safe.
        item = orjson.dumps(row, option=orjson.OPT_INDENT_2, default=str).decode()
        out.write(("[\n  " if first else ",\n  ") + item.replace("\n", "\n  "))
        first = False
    out.write("[]\n" if first else "\n]\n")


TABLE_ROWS = 100  # a table is for reading: longer listings are cut, with a note saying so


def show_rows(fetch: Callable[[int | None], Iterable[dict[str, Any]]], total: Callable[[], int],
              *, as_json: bool, limit: int | None, columns: Sequence[str], noun: str,
              title: str | None = None) -> int:
    """Print a listing; never cut it silently. `fetch(n)` gives the first n rows (all for
    None), `total()` how many there are. `--json` prints every row unless `--limit N`
    (0 = all) says otherwise; a table stops at TABLE_ROWS. When rows are left out a note
    on stderr says how many were shown of how many and how to see all. Returns the number
    of rows printed."""
    cap = (limit or None) if limit is not None else (None if as_json else TABLE_ROWS)
    if cap is None:
        rows: Iterable[dict[str, Any]] = fetch(None)
        if as_json:
            counted = _Counted(rows)
            emit_json_rows(counted)
            return counted.n
        shown = list(rows)
        table(shown, columns, title)
        return len(shown)
    shown = list(fetch(cap))
    if as_json:
        emit_json(shown)
    else:
        table(shown, columns, title)
    if len(shown) >= cap:
        count = total()
        if count > len(shown):
            how = "--limit 0" if as_json else "--limit 0 or --json"
            sys.stderr.write(f"note: showing {len(shown):,} of {count:,} {noun}; "
                             f"{how} shows all\n")
    return len(shown)


class _Counted:
    """Pass rows through, counting them (a streamed listing's size for the audit log)."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows, self.n = rows, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            self.n += 1
            yield row


def disk_full(exc: BaseException) -> str | None:
    """What to tell the user when `exc` is a write that failed for lack of space, else None.

    SQLite reports a full disk as "database or disk is full", or as "disk I/O error" when
    it is the WAL or its shared-memory file that cannot grow; files give ENOSPC/EDQUOT.
    A failed SQLite write leaves the database as its last commit, so the one line can
    say that nothing saved before is lost. Matched by name: this module must not import
    the database drivers (start-up time)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if type(exc).__name__ in ("OperationalError", "DatabaseError"):
        text = str(exc)
        if "disk is full" in text:
            return "the disk is full"
        if "disk I/O error" in text:
            return "the disk cannot be written (full, or failing)"
    return None


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console().print(t)


def show(payload: dict[str, Any] | list[dict[str, Any]], as_json: bool,
         columns: Sequence[str] = (), title: str | None = None) -> None:
    """Print a record or listing: JSON when asked, else a table or key/value lines."""
    import typer

    if as_json:
        emit_json(payload)
    elif isinstance(payload, list):
        table(payload, columns, title)
    else:
        for key, value in payload.items():
            if value not in (None, ""):  # plain click styling: no rich needed for a record
                typer.echo(f"{typer.style(key, bold=True)}: {value}")


def field_args(args: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    """Parse `--some-field VALUE` pairs left over by the CLI into {some_field: VALUE}."""
    out: dict[str, str] = {}
    items = list(args)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--"):
            fail(f"unexpected argument {flag!r}; fields are given as --field VALUE")
        name, _, inline = flag[2:].partition("=")
        key = name.replace("-", "_")
        if key not in allowed:
            fail(f"unknown field --{name}; known: " + ", ".join("--" + f.replace("_", "-")
                                                             for f in allowed))
        if inline:
            out[key] = inline
        elif items:
            out[key] = items.pop(0)
        else:
            fail(f"--{name} needs a value")
    return out


def validation_message(exc: Exception) -> str:
    """First problem of a pydantic ValidationError, as one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)
