"""Plain text that reads at any width and when piped (CI logs, `| less`): nothing is cut.

Words wrap at spaces only: a path, URL or flag is one word, moved whole to a line of
its own and never broken or shortened. Columns are sized from the data; when they
would not fit the width, each row becomes a block of `name  value` lines instead.
Paths inside the current folder are shown relative to it. Colour only on a terminal
(click strips it from piped output).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import typer

__all__ = [
    "Column",
    "Whole",
    "command_group",
    "echo",
    "fields",
    "shown_path",
    "table",
    "width",
    "wrap",
]

_DEFAULT_WIDTH = 80
_MIN_WIDTH = 40


def command_group(help_text: str, short_help: str) -> typer.Typer:
    """A group of subcommands (`vaceflow catalog ...`): plain help, like the root's."""
    return typer.Typer(
        help=help_text, short_help=short_help, no_args_is_help=True, rich_markup_mode=None
    )


def width() -> int:
    """The terminal's columns (COLUMNS wins), 80 when piped or unknown."""
    given = os.environ.get("COLUMNS", "")
    if given.isdigit() and int(given) > 0:
        return max(_MIN_WIDTH, int(given))
    return max(_MIN_WIDTH, shutil.get_terminal_size((_DEFAULT_WIDTH, 24)).columns)


class Whole(str):
    """A value shown whole on one line (a path, a URL): even its spaces are not places to
    wrap. `shown_path` returns one."""

    __slots__ = ()


_HELD = "\u00a0"  # textwrap splits at ASCII whitespace only


def wrap(
    text: str,
    *,
    first: str = "",
    indent: str = "",
    columns: int | None = None,
    keep: Sequence[str] = (),
) -> list[str]:
    """`text` in lines of at most `columns`, broken at spaces only (a longer word stands
    alone on its line, whole); `first` starts the first line, `indent` the others. The
    parts in `keep` (and `text` itself when it is `Whole`) are never broken."""
    if isinstance(text, Whole):
        return [first + text]
    for part in keep:
        if part and " " in part:
            text = text.replace(part, part.replace(" ", _HELD))
    lines = textwrap.wrap(
        text,
        width=columns or width(),
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_HELD, " ") for line in lines] or [first.rstrip()]


def fields(
    pairs: Sequence[tuple[str, str]], *, indent: int = 2, columns: int | None = None
) -> list[str]:
    """`name  value` lines, the values aligned and wrapped beneath themselves."""
    shown = [(name, value) for name, value in pairs if value]
    if not shown:
        return []
    label = max(len(name) for name, _ in shown) + 2
    out: list[str] = []
    for name, value in shown:
        first = " " * indent + name.ljust(label)
        if isinstance(value, Whole):
            out.append(first + value)
            continue
        for i, line in enumerate(value.splitlines() or [""]):
            head = first if i == 0 else " " * len(first)
            out += wrap(line, first=head, indent=" " * len(first), columns=columns)
    return out


class Column:
    """A table column: its header, alignment and an optional style for its cells."""

    def __init__(
        self, header: str, *, right: bool = False, style: Callable[[str], str] | None = None
    ) -> None:
        self.header = header
        self.right = right
        self.style = style


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    below: Sequence[Sequence[str]] | None = None,
    key: int = 0,
    width_: int | None = None,
) -> list[str]:
    """Rows under their headers, two spaces apart; `below[i]` adds indented lines under
    row i (long values, wrapped). Too wide for the terminal: one block per row."""
    limit = width_ or width()
    sizes = [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    if sum(sizes) + 2 * (len(sizes) - 1) > limit:
        return _blocks(columns, rows, below=below, key=key, limit=limit)
    out = [_line([c.header.upper() for c in columns], sizes, columns, header=True)]
    for i, row in enumerate(rows):
        out.append(_line(list(row), sizes, columns))
        for extra in below[i] if below else ():
            out += wrap(extra, first="  ", indent="    ", columns=limit)
    return out


def _line(
    cells: list[str], sizes: list[int], columns: Sequence[Column], header: bool = False
) -> str:
    parts = []
    for cell, size, column in zip(cells, sizes, columns, strict=True):
        padded = cell.rjust(size) if column.right else cell.ljust(size)
        if column.style and not header and cell:
            padded = padded.replace(cell, column.style(cell), 1)
        parts.append(padded)
    return "  ".join(parts).rstrip()


def _blocks(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    below: Sequence[Sequence[str]] | None,
    key: int,
    limit: int,
) -> list[str]:
    out: list[str] = []
    for i, row in enumerate(rows):
        if out:
            out.append("")
        out.append(row[key])
        pairs = [(c.header, row[j]) for j, c in enumerate(columns) if j != key]
        out += fields(pairs, columns=limit)
        for extra in below[i] if below else ():
            out += wrap(extra, first="  ", indent="    ", columns=limit)
    return out


def shown_path(path: str | Path | None) -> Whole:
    """A path as the user reads it: relative to the current folder when inside it."""
    if not path:
        return Whole("")
    p = Path(path)
    here = Path.cwd()
    for candidate, base in ((p.absolute(), here.absolute()), (p.resolve(), here.resolve())):
        if candidate.is_relative_to(base):
            return Whole(candidate.relative_to(base))
    return Whole(p)


def echo(lines: Sequence[str], *, err: bool = False) -> None:
    for line in lines:
        typer.echo(line, err=err)
