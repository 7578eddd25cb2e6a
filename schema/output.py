"""Output conventions shared by both CLIs: `--json` prints one JSON document;
failures print one line on stderr that says what to do, and exit non-zero."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

console = Console()


def emit_json(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _click_error(name: str) -> type[Exception]:
    """click's exception class `name`, from whichever click typer runs on (it may vendor one)."""
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
    raise SystemExit(code if isinstance(code, int) else 0)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(t)


def show(payload: dict[str, Any] | list[dict[str, Any]], as_json: bool,
         columns: Sequence[str] = (), title: str | None = None) -> None:
    """Print a record or listing: JSON when asked, else a table or key/value lines."""
    if as_json:
        emit_json(payload)
    elif isinstance(payload, list):
        table(payload, columns, title)
    else:
        for key, value in payload.items():
            if value not in (None, ""):
                console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


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
