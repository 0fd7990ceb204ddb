"""Every command a message or a document names exists, with the flags it names.

A message that tells a user to run `vaceflow catalog resolve JOB --task-id ID` is a
promise: this test finds every such command (in backticks, the convention of the code's
messages and of the docs) and walks the real CLI for it. Words in capitals, `<...>`,
`[...]` and `...` are placeholders; a flag must exist on the command it follows.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from vaceflow.cli import app

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    *sorted((ROOT / "vaceflow").rglob("*.py")),
    *sorted((ROOT / "flows").rglob("*.py")),
    *sorted((ROOT / "tasks").rglob("*.py")),
    *sorted((ROOT / "deployments").rglob("*.py")),
    *sorted(ROOT.glob("*.md")),
    *sorted((ROOT / "infra").glob("*.md")),
]
COMMAND = re.compile(r"`(?:\./dev )?vaceflow((?: [^`\n]+)?)`")


def named_commands() -> list[tuple[str, str]]:
    """(where, command line) for every backticked `vaceflow ...` in the sources."""
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in COMMAND.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1).strip()))
    return found


def _placeholder(word: str) -> bool:
    bare = word.strip("[]<>().,")
    return (
        not bare
        or bare == "..."
        or word[:1] in "[<"
        or (bare.replace("_", "").replace("-", "").isupper())
        or "|" in word
    )


def check(line: str) -> str | None:
    """Why `vaceflow LINE` does not exist, or None when it does."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    command = typer.main.get_command(app)
    path = ["vaceflow"]
    for word in words:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            if flag not in known | {"--help"}:
                return f"`{' '.join(path)}` has no option {flag}"
            continue
        subcommands = getattr(command, "commands", None)  # a group (typer's own click)
        if subcommands is not None:
            if _placeholder(word):
                return None  # e.g. `vaceflow run FUNCTION ...`: the rest is not checkable
            sub = subcommands.get(word)
            if sub is None:
                return f"`{' '.join(path)}` has no command {word!r}"
            command = sub
            path.append(word)
    return None


def test_the_sources_name_commands_at_all() -> None:
    lines = [line for _, line in named_commands()]
    assert any(line.startswith("catalog resolve") for line in lines)
    assert any(line.startswith("dev up") for line in lines)


@pytest.mark.parametrize(("where", "line"), named_commands(), ids=lambda v: str(v)[:60])
def test_every_named_command_exists(where: str, line: str) -> None:
    assert check(line) is None, f"{where}: `vaceflow {line}`: {check(line)}"


def test_the_checker_finds_a_command_that_does_not_exist() -> None:
    assert check("catalog resolve JOB --task-id ID") is None
    assert check("catalog resolve JOB --resubmit") is None
    assert "no command 'resolv'" in (check("catalog resolv JOB") or "")
    assert "no option --task" in (check("catalog resolve JOB --task X") or "")
