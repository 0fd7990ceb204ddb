"""A new user's first hour, from the README alone: every command it shows, as written.

The test clones the repository it runs from (`git clone`, so only committed files)
into a temporary folder and works there as a newcomer would: the README's quickstart
block line by line (each must succeed), then every command the README shows after it,
in the order it shows them. It fails on a `command not found`, a traceback, or a line
cut short (`…`), at 80 columns and piped, which is how CI logs read.

What runs as written: each ```bash block (as one script, so its `export` lines hold for
the commands after them) and each inline `./dev ...` command. A form with placeholders
(`./dev vaceflow catalog show JOB`) cannot run as written: its sub-command must exist
(`--help` answers). A few commands are not run, each for the reason in `NOT_RUN`: the
suite itself, and servers that run until interrupted; those must exist too. A command
the README shows twice runs once (`./dev demo` is `./dev vaceflow demo`: the demo runs
once in the whole suite, here), and a command's `--help` answers once.

The clone reuses the suite's own environment instead of installing a second one (a
second install takes minutes and the registry): its `.venv` is a symlink to this
checkout's, the files `./dev` compares with its install stamp keep this checkout's
modification times (so `./dev` sees an installed environment, as a second run would),
and PYTHONPATH puts the clone's own code first (the environment's editable install
points at this checkout). Everything else, `./dev` included, is the clone's.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures_serve import clean_env

ROOT = Path(__file__).resolve().parents[1]
CUT = "…"
"""How a terminal table cuts what does not fit (prose may end in three dots)."""
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")

NOT_RUN = {
    "./dev test": "the suite, which is running this test",
    ".ci/run": "CI: the suite, which is running this test",
    "./dev check": "CI runs it before the suite",
    "./dev bench": "minutes of benchmarks, run on their own",
    "./dev vaceflow serve": "serves until interrupted (tests/test_deployments.py serves)",
    "./dev vaceflow emulator": "serves until interrupted (tests/test_emulator_cli.py)",
    "./dev vaceflow dev up --team": "PostgreSQL and two workers (tests/test_team_stack.py)",
}

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Shown:
    """A command the README shows: a ```bash block's script, or an inline command."""

    text: str
    block: bool = False


def shown_after_quickstart(readme: str) -> tuple[list[str], list[Shown]]:
    """The quickstart block's lines, and every command shown after them, in order."""
    start = readme.index("## Quickstart")
    body = readme[start:]
    pieces = re.finditer(r"```(\w*)\n(.*?)```|`([^`\n]+)`", body, re.DOTALL)
    quickstart: list[str] = []
    shown: list[Shown] = []
    for piece in pieces:
        language, block, inline = piece.groups()
        if block is not None:
            if language != "bash":
                continue
            if not quickstart:
                quickstart = [_command(line) for line in block.splitlines() if _command(line)]
            else:
                shown.append(Shown(block, block=True))
        elif inline.startswith(("./dev", ".ci/", "vaceflow ", "prefect ")):
            shown.append(Shown(inline))
    return quickstart, shown


def _command(line: str) -> str:
    return line.split(" #")[0].strip()


def test_readme_commands_are_written_to_run_from_the_project_folder() -> None:
    """The rule, checked on the text: no command a new shell would not find."""
    _, shown = shown_after_quickstart((ROOT / "README.md").read_text())
    bare = [s.text for s in shown if s.text.startswith(("vaceflow ", "prefect "))]
    assert not bare, f"write these as ./dev vaceflow ... or ./dev prefect ...: {bare}"
    for s in shown:
        for line in s.text.splitlines() if s.block else [s.text]:
            words = line.split()
            assert not words or words[0] not in ("vaceflow", "prefect"), line


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("newcomer") / "vaceflow"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True)
    venv = ROOT / ".venv"
    assert (venv / ".installed").is_file(), "the suite runs in ./dev's own environment"
    (folder / ".venv").symlink_to(venv)
    for name in ("requirements.lock", "pyproject.toml"):
        mine = (ROOT / name).stat()
        os.utime(folder / name, ns=(mine.st_atime_ns, mine.st_mtime_ns))
    return folder


def newcomer_env(clone: Path) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(clone), COLUMNS="80", TERM="dumb")


def run_shell(script: str, clone: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=clone,
        env=newcomer_env(clone),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def assert_reads_well(what: str, result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 127, f"{what}: command not found\n{output}"
    assert "command not found" not in output, f"{what}\n{output}"
    assert "Traceback" not in output, f"{what}\n{output}"
    assert CUT not in output, f"{what}: a line cut short\n{output}"


def exists(command: str, clone: Path, checked: set[str]) -> None:
    """A command not run as written must still exist: its `--help`, or `./dev help`
    (each once: `checked` holds what answered already)."""
    words = command.split()
    if command.startswith(".ci/"):
        assert os.access(clone / words[0], os.X_OK), command
        return
    if words[:2] != ["./dev", "vaceflow"]:
        if "./dev help" not in checked:
            listed = run_shell("./dev help", clone)
            assert f"./dev {words[1]}" in listed.stdout, command
        checked.add("./dev help")  # it lists every ./dev command: one look is enough
        return
    path = []
    for word in words[2:]:
        if word.startswith(("-", "[")) or PLACEHOLDER.match(word):
            break
        path.append(word)
    help_command = shlex.join(["./dev", "vaceflow", *path, "--help"])
    if help_command in checked:
        return
    result = run_shell(help_command, clone)
    assert_reads_well(f"{command} (its --help)", result)
    assert result.returncode == 0, f"{command}: no such command\n{result.stderr}"
    checked.add(help_command)


def same_command(text: str) -> str:
    """`./dev demo` is `./dev vaceflow demo` (the dev script's alias): one command."""
    return (
        "./dev demo" + text.removeprefix("./dev vaceflow demo")
        if text.startswith("./dev vaceflow demo")
        else text
    )


def is_form(command: str) -> bool:
    words = shlex.split(command)
    return any(PLACEHOLDER.match(w) or "[" in w or "..." in w for w in words)


def test_a_newcomer_follows_the_readme(clone: Path) -> None:
    quickstart, shown = shown_after_quickstart((clone / "README.md").read_text())
    assert quickstart[0] == "./dev demo"
    ran: set[str] = set()
    checked: set[str] = set()
    try:
        for command in quickstart:
            result = run_shell(command, clone)
            assert_reads_well(command, result)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            ran.add(same_command(command))
            if command == "./dev demo":
                assert "5 of 5 functions succeeded" in result.stdout
                assert "./dev vaceflow dev down" in result.stdout, "its hints run as written"

        for item in shown:
            if same_command(item.text) in ran:
                continue
            ran.add(same_command(item.text))
            skipped = next((k for k in NOT_RUN if item.text.startswith(k)), None)
            if not item.block and (skipped or is_form(item.text)):
                exists(item.text, clone, checked)
                continue
            assert_reads_well(item.text, run_shell(item.text, clone))
    finally:
        run_shell("./dev vaceflow dev down", clone)
