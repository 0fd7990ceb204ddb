"""A sixth VACE function needs one file: its job model in `vaceflow/jobs.py`.

The test copies the packages to a temporary folder, adds a made-up function
(`video_mirror`: a video and two parameters) to the copy's models file only, and runs
the copy (first on `sys.path`, in processes of their own): the CLI's `run` grows its
command and flags, a flow of it has its parameters, a dry run validates a job of it,
and a run without Prefect pays once through the emulator and collects a real video.
CONTRIBUTING.md's checklist names what is optional beyond that (a deployment, the demo).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import TEST_KEY
from tests.media import MediaFactory
from vaceflow.catalog import JobRecord, JobStatus
from vaceflow.media.probe import probe

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vaceflow", "tasks", "flows", "deployments")
MODELS = "vaceflow/jobs.py"

# What a developer writes in the models file: an enum member, the three models, the
# union's member and the JOB_TYPES entry, each beside the fifth function's.
ENUM_AFTER = '    VIDEO_OUTPAINTING = "video_outpainting"\n'
ENUM = '    VIDEO_MIRROR = "video_mirror"\n'
MODELS_BEFORE = "# --- the union "
NEW_MODELS = '''# --- video_mirror (made up by tests/test_sixth_function.py) ------------------


class Axis(StrEnum):
    HORIZONTAL = "horizontal"
    VERTICAL = "vertical"


class VideoMirrorInput(_Input):
    function: Literal[Function.VIDEO_MIRROR] = Function.VIDEO_MIRROR
    prompt: Prompt = Field(description="What the mirrored video should show.")
    video_url: Url = Field(description="The video to mirror (cut to its first 5 s).")


class VideoMirrorParameters(_Parameters):
    axis: Axis = Field(default=Axis.HORIZONTAL, description="Which way to flip the picture.")
    blend: UnitFloat = Field(default=0.5, description="How much of the original shows (0-1).")


class VideoMirrorJob(_Job):
    """Mirror a video along an axis."""

    input: VideoMirrorInput
    parameters: VideoMirrorParameters = Field(default_factory=VideoMirrorParameters)


'''
UNION_AFTER = "    | Annotated[VideoOutpaintingJob, Tag(Function.VIDEO_OUTPAINTING.value)]"
UNION = "\n    | Annotated[VideoMirrorJob, Tag(Function.VIDEO_MIRROR.value)]"
TYPES_AFTER = "    Function.VIDEO_OUTPAINTING: VideoOutpaintingJob,\n"
TYPES = "    Function.VIDEO_MIRROR: VideoMirrorJob,\n"

PROBE = """
import json, sys
from typer.main import get_command
from typer.testing import CliRunner

import vaceflow
from vaceflow.cli import app
from vaceflow.errors import describe_validation_error
from vaceflow.jobs import Function, parse_job

clip = sys.argv[1]
group = get_command(app).commands["run"]
command = group.commands.get("video_mirror")
runner = CliRunner()
dry = runner.invoke(app, ["run", "video_mirror", "--prompt", "a mirror", "--video", clip,
                          "--axis", "vertical", "--blend", "0.25", "--dry-run", "--json"])
out_of_range = runner.invoke(app, ["run", "video_mirror", "--prompt", "p", "--video", clip,
                                   "--blend", "1.5", "--dry-run"])
try:
    parse_job({"input": {"function": "video_mirror", "prompt": "p"}})
except ValueError as exc:
    refused = describe_validation_error(exc)

from flows.functions import function_flow

flow = function_flow(Function("video_mirror"))
print(json.dumps({
    "package": vaceflow.__file__,
    "commands": sorted(group.commands),
    "flags": sorted(o for p in command.params for o in p.opts) if command else [],
    "dry": {"code": dry.exit_code, "stdout": dry.stdout, "output": dry.output},
    "out_of_range": out_of_range.exit_code,
    "refused": refused,
    "flow": {"name": flow.name, "schema": flow.parameters.model_dump()},
}))
"""

RUN = """
import json, os, sys
import httpx
from vaceflow.emulator import EmulatorConfig, EmulatorServer

with EmulatorServer(EmulatorConfig(api_key=os.environ["DASHSCOPE_API_KEY"], latency=0.3)) as emu:
    os.environ["DASHSCOPE_HTTP_BASE_URL"] = emu.base_url
    from vaceflow.cli import main
    sys.argv = ["vaceflow", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exit:
        code = exit.code
    tasks = httpx.get(emu.root_url + "/_emulator/tasks").json()["tasks"]
    print(json.dumps({"code": code, "tasks": tasks}), file=sys.stderr)
"""


def _insert(text: str, anchor: str, new: str, *, before: bool = False) -> str:
    assert text.count(anchor) == 1, f"the models file no longer has {anchor!r}: update this test"
    return text.replace(anchor, new + anchor if before else anchor + new)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for package in PACKAGES
        for path in sorted((root / package).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages whose models file alone has a sixth function."""
    root = tmp_path_factory.mktemp("sixth") / "project"
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package)  # compiled files still fit
    models = root / MODELS
    text = models.read_text()
    text = _insert(text, ENUM_AFTER, ENUM)
    text = _insert(text, MODELS_BEFORE, NEW_MODELS, before=True)
    text = _insert(text, UNION_AFTER, UNION)
    text = _insert(text, TYPES_AFTER, TYPES)
    models.write_text(text)
    return root


def _env(project: Path, data: Path) -> dict[str, str]:
    """No Prefect server and no vaceflow settings but these; the copy first on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VACEFLOW_"))}
    return env | {
        "PYTHONPATH": str(project),
        "DASHSCOPE_API_KEY": TEST_KEY,
        "VACEFLOW_DATA_DIR": str(data / "data"),
        "VACEFLOW_STAGING": "dashscope",
        "PREFECT_HOME": str(data / "prefect-home"),
    }


def _python(project: Path, data: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(project, data),
        cwd=data,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0, name="mirror")


def test_the_sixth_function_touches_only_the_models_file(project: Path) -> None:
    before, after = _digests(REPO), _digests(project)
    assert sorted(before) == sorted(after)
    assert [name for name in after if after[name] != before[name]] == [MODELS]


def test_the_cli_and_the_flows_grow_it_and_a_dry_run_validates_it(
    project: Path, clip: Path, tmp_path: Path
) -> None:
    done = _python(project, tmp_path, PROBE, str(clip))
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(project)

    assert "video_mirror" in found["commands"]
    assert {"--prompt", "--video", "--axis", "--blend", "--seed", "--dry-run"} <= set(
        found["flags"]
    )
    assert found["out_of_range"] == 2  # the model's 0-1 range, as a flag's
    assert found["refused"] == "input.video_url: required"  # named by body path, no tag

    dry = found["dry"]
    assert dry["code"] == 0, dry["output"]
    out = json.loads(dry["stdout"])
    assert out["ready"] is True
    assert out["job"]["input"]["function"] == "video_mirror"
    assert out["job"]["parameters"] == {"axis": "vertical", "blend": 0.25}
    assert probe(out["files"]["video"][0]).resolution == "320x240"

    flow = found["flow"]
    assert flow["name"] == "video_mirror"
    properties = flow["schema"]["properties"]
    assert {"prompt", "video", "axis", "blend", "seed", "timeout_minutes"} <= set(properties)
    assert flow["schema"]["required"] == ["prompt", "video"]
    assert properties["blend"]["maximum"] == 1.0


def test_a_run_of_it_pays_once_through_the_emulator(
    project: Path, clip: Path, tmp_path: Path
) -> None:
    done = _python(project, tmp_path, RUN, "run", "video_mirror", "--prompt", "a mirror",
                   "--video", str(clip), "--axis", "vertical", "--json")  # fmt: skip
    emulated = json.loads(done.stderr.strip().splitlines()[-1])
    assert emulated["code"] in (0, None), done.stderr
    assert len(emulated["tasks"]) == 1  # one submission: one payment
    record = JobRecord.model_validate(json.loads(done.stdout))
    assert record.status is JobStatus.SUCCEEDED
    assert record.function == "video_mirror"
    assert record.output is not None
    facts = probe(record.output.path or "")
    assert (facts.codec, facts.resolution) == ("h264", "320x240")
