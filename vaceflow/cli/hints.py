"""How vaceflow writes a command for the user to type next: one rule, used by every hint.

A command is printed the way the user started this one, so that it runs as written in
the same shell: `./dev vaceflow ...` when the project's `./dev` started it (`./dev`
says so in VACEFLOW_COMMAND), `vaceflow ...` when that name on PATH is this very
program (an activated environment, an installed package), else the program's own
path. The README writes every command the first way, which is how they run from the
project folder after its quickstart.

Messages from the core name commands in backquotes (`vaceflow catalog list`);
`in_commands` rewrites those the same way before a message is printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["command", "in_commands", "launcher", "prefect_command"]

LAUNCHER_VARIABLE = "VACEFLOW_COMMAND"
"""Set by `./dev` to how it was invoked (`./dev vaceflow`)."""

_QUOTED = re.compile(r"`vaceflow(?= |`)")


def launcher() -> str:
    """What the user types to run vaceflow from the shell that started this process."""
    given = os.environ.get(LAUNCHER_VARIABLE, "").strip()
    if given:
        return given
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    on_path = shutil.which("vaceflow")
    if program is None or program.name != "vaceflow":
        return "vaceflow"  # not started as the `vaceflow` script (a test runner, python -m)
    if on_path and Path(on_path).resolve() == program.resolve():
        return "vaceflow"
    try:
        shown = program.resolve().relative_to(Path.cwd())
        return shlex.quote(f"./{shown}" if len(shown.parts) == 1 else str(shown))
    except ValueError:
        return shlex.quote(str(program))


def command(args: str) -> str:
    """`args` (e.g. "dev up") as a command line the user can run as written."""
    return f"{launcher()} {args}".rstrip()


def prefect_command(args: str) -> str:
    """Prefect's own CLI, by the same rule: `./dev prefect ...`, `prefect ...`, or the
    `prefect` beside this program."""
    head, _, last = launcher().rpartition(" ")
    if last == "vaceflow" and head:
        return f"{head} prefect {args}"
    if last.endswith("vaceflow") and "/" in last:
        return f"{last.removesuffix('vaceflow')}prefect {args}"
    return f"prefect {args}"


def in_commands(text: str) -> str:
    """`text` with every backquoted `vaceflow ...` command written by the same rule."""
    prefix = launcher()
    if prefix == "vaceflow":
        return text
    return _QUOTED.sub(lambda _: f"`{prefix}", text)
