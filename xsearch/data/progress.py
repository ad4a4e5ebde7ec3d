"""The progress bar of a cache build: images decoded of N, rate and ETA, on stderr when it is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, console: Console | None = None
) -> Iterator[Callable[[int], None]]:
    """A function that advances a bar of `total` images by its argument.

    The bar is drawn on `console`, else on stderr when it is a terminal (worker processes, logs and CI
    see nothing), and removed when the block ends.
    """
    if console is None and not sys.stderr.isatty():
        yield lambda done: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)
