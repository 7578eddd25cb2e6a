"""The progress bar of `fieldvault sync` on a terminal: pushed and pulled of their totals,
with the rate. Nothing is drawn when stderr is not a terminal or with `--json`: scripts
and timers read the result line alone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sync import Progress

# What sync.py reports through its progress callback: a total, then counts as they go.
TOTALS = {"push-total": "push", "pull-total": "pull"}
LABELS = {"push": "pushed", "pull": "pulled", "final-flush": "handed over"}


def wanted(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


@contextmanager
def sync_bar(enabled: bool) -> Iterator[Progress | None]:
    """A progress callback drawing on stderr, or None when `enabled` is false (rich is
    then not even imported: start-up time counts for a command a timer runs)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            # Records per second over the whole task (rich's own estimate needs a few
            # samples, which a short sync never gives it).
            elapsed = task.finished_time or task.elapsed
            speed = task.completed / elapsed if elapsed else 0
            return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")

    bar = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                   Rate(), TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    tasks: dict[str, Any] = {}

    def task(kind: str, total: int | None = None) -> Any:
        if kind not in tasks:
            tasks[kind] = bar.add_task(LABELS.get(kind, kind), total=total)
        return tasks[kind]

    def report(kind: str, n: int) -> None:
        if kind in TOTALS:
            if n or TOTALS[kind] in tasks:  # nothing to send or fetch: no bar for it
                bar.update(task(TOTALS[kind], n), total=n)
            return
        t = task(kind)
        bar.advance(t, n)
        current = bar.tasks[t]
        if current.total is not None and current.completed > current.total:
            bar.update(t, total=current.completed)  # the count was an upper bound's guess

    with bar:
        yield report
        for t in tasks.values():  # done: every bar full, whatever the estimate said
            bar.update(t, total=bar.tasks[t].completed)
