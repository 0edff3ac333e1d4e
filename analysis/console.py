"""Rich consoles for command output that reads the same in a terminal and in a CI log.

On a terminal rich lays out to the window's width. Piped (CI logs, ``| tee``, a file) it
would assume 80 columns, cut table cells to ``2…`` and break long lines such as a command to
copy; here output that is not a terminal is laid out as wide as its content instead.
"""

from __future__ import annotations

import sys
from typing import IO

from rich.console import Console, RenderableType
from rich.measure import Measurement

PLAIN_MAX_WIDTH = 1000
"""The widest a line gets when output is not a terminal (content decides below that)."""


def output_console(file: IO[str] | None = None, stderr: bool = False) -> Console:
    """A console for ``file`` (stdout): on a terminal as usual; otherwise text lines never
    wrap (``soft_wrap``) and :func:`fit` widens it for tables."""
    console = Console(file=file, stderr=stderr)
    if console.is_terminal:
        return console
    stream = file or (sys.stderr if stderr else sys.stdout)
    return Console(file=stream, soft_wrap=True, width=max(console.width, 80),
                   force_terminal=False, highlight=False)


def fit(console: Console, *renderables: RenderableType, min_width: int = 0) -> None:
    """On a non-terminal console, widen it so that ``renderables`` fit at their natural width
    (no cell cut, no wrapped row), and to at least ``min_width``; a terminal keeps its width."""
    if console.is_terminal:
        return
    options = console.options.update(max_width=PLAIN_MAX_WIDTH)
    needed = max([min_width, *(Measurement.get(console, options, r).maximum
                               for r in renderables)])
    console.width = min(max(console.width, needed), PLAIN_MAX_WIDTH)
