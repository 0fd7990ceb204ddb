"""What a user reads, at 80 columns and piped: nothing cut, flags and files by name.

Every `--help` of the command tree, the catalog after a real job, refusals of real
media, the conform report's rotation beside ffmpeg's own words, and the one rule by
which commands are printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tests.conftest import FileServer
from tests.fixtures_flows import VaceEnv
from tests.media import MediaFactory
from tests.test_media_conform import ffmpeg_file, picture, rotated
from vaceflow.cli import app
from vaceflow.cli.hints import command, in_commands, prefect_command
from vaceflow.media.ffmpeg import find_ffmpeg
from vaceflow.media.probe import probe
from vaceflow.media.report import MediaSummary

WIDTH = 80
CUT = re.compile(r"…|\w\.\.\.\s*$")
"""An ellipsis, or three dots glued to a word at a line's end (click's `[ARGS]...` is none)."""


def assert_nothing_cut(text: str, *whole: str) -> None:
    """No line ends cut, none is wider than 80 unless it ends in a path or URL (kept
    whole), and each of `whole` appears unbroken."""
    for line in text.splitlines():
        assert not CUT.search(line), f"cut short: {line!r}"
        if len(line) > WIDTH:  # only a path or URL, which is never broken
            assert "/" in line.split()[-1], f"a wide line that could wrap: {line!r}"
    for word in whole:
        assert word in text, f"{word!r} not whole in:\n{text}"


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from commands(sub, (*path, name))


def test_every_help_fits_80_columns_and_names_every_flag_whole() -> None:
    runner = CliRunner()
    for path, cmd in commands(get_command(app)):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
        assert result.exit_code == 0, (path, result.output)
        flags = [opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)]
        assert_nothing_cut(result.output, *[f for f in flags if f.startswith("--")])
        assert "<|" not in result.output, "an empty choice"
        assert "|>" not in result.output, "an empty choice"


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    return " ".join(result.output.split())


def test_required_flags_are_marked() -> None:
    assert "--control-condition <posebodyface|posebody|depth|scribble> " in help_of(
        "run", "video_repainting"
    )
    assert "[required]" in help_of("run", "video_repainting").split("--control-condition")[1]
    ref_image = help_of("run", "image_reference").split("--ref-image")[1]
    assert ref_image.split("--")[0].rstrip().endswith("[required]")
    assert "Needs --mask-image or --mask-video." in help_of("run", "video_edit")
    assert "Required: this or --mask-video." in help_of("run", "video_edit")
    assert "<none|posebodyface|depth>" in help_of("run", "video_edit")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path / "data"))
    for name in ("DASHSCOPE_API_KEY", "VACEFLOW_S3_BUCKET", "VACEFLOW_STAGING"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def refusal(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, ["run", *args, "--dry-run"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 2, result.output
    assert "  " not in result.stderr.replace("\n  ", "\n"), "a doubled space"
    assert not re.search(r"\b[A-Z][a-z]+(Error|Refused|Invalid)\b", result.stderr), result.stderr
    assert "input: input" not in result.stderr
    return " ".join(result.stderr.split())


def test_refusals_name_the_flag_and_the_file(cli: CliRunner, media: MediaFactory) -> None:
    good = str(media.image(width=640, height=480))
    tall = str(picture(media, 300, 3000))
    said = refusal(cli, "image_reference", "--prompt", "a cat",
                   "--ref-image", good, "--ref-image", tall, "--ref-image", good,
                   "--obj-or-bg", "obj", "--obj-or-bg", "obj", "--obj-or-bg", "bg")  # fmt: skip
    assert said.startswith(f"refused: --ref-image {tall}: 300x3000 cannot fit")
    assert "rule: sides in [360, 2000] px" in said

    video = str(media.video(width=320, height=240, seconds=1))
    said = refusal(cli, "video_edit", "--prompt", "x", "--video", video)
    assert said == "refused: video_edit needs --mask-image or --mask-video"

    said = refusal(
        cli, "image_reference", "--prompt", "x", "--ref-image", good, "--ref-image", good
    )
    assert said.startswith("refused: --obj-or-bg is required with 2 reference images")
    assert "ref_images_url" not in said

    said = refusal(cli, "video_edit", "--prompt", "x", "--video", good, "--mask-image", good)
    assert (
        said
        == f"refused: --video {good}: a still image (png) where a video is expected rule: a video"
    )

    missing = str(media.root / "nowhere.mp4")
    said = refusal(cli, "video_outpainting", "--prompt", "x", "--video", missing)
    assert said == f"error: --video {missing}: no such file"


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_is_labelled_as_ffmpeg_reports_it(media: MediaFactory, degrees: int) -> None:
    src = rotated(media, degrees)
    shown = subprocess.run(
        [find_ffmpeg().path, "-hide_banner", "-i", str(src)], capture_output=True, text=True
    ).stderr
    ffmpeg_says = re.search(r"rotation of (-?[\d.]+) degrees", shown)
    assert ffmpeg_says, shown
    label = str(MediaSummary.of(probe(src)))
    assert f"display rotation {float(ffmpeg_says.group(1)):g}°" in label


def test_commands_are_printed_as_the_user_started_vaceflow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VACEFLOW_COMMAND", "./dev vaceflow")
    assert command("dev up") == "./dev vaceflow dev up"
    assert prefect_command("deploy --all") == "./dev prefect deploy --all"
    assert in_commands("see `vaceflow catalog list`") == "see `./dev vaceflow catalog list`"
    monkeypatch.delenv("VACEFLOW_COMMAND")
    script = tmp_path / "bin" / "vaceflow"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", str(script.parent))
    assert command("dev down") == "vaceflow dev down"  # on PATH: its name
    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.chdir(tmp_path)
    assert command("dev down") == "bin/vaceflow dev down"  # else: the path typed again


MakeEnv = Callable[..., VaceEnv]


def test_the_catalog_after_a_real_job_reads_at_80_columns(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    from flows.job import vace_job
    from tests.test_media_conform import blurry_mask
    from vaceflow.jobs import parse_job

    env = vace_env()
    video = media.video(width=320, height=240, fps=24, seconds=2)
    mask = blurry_mask(media, 320, 240)
    record = vace_job(
        parse_job(
            {
                "input": {"function": "video_edit", "prompt": "a red ball",
                          "video_url": str(video), "mask_image_url": str(mask)},
                "parameters": {"mask_type": "fixed"},
            }
        )
    )  # fmt: skip
    assert record.output is not None
    runner = CliRunner()
    wide = {"COLUMNS": str(WIDTH)}

    listed = runner.invoke(app, ["catalog", "list"], env=wide).output
    header, line, beneath = listed.splitlines()[:3]
    assert header.split() == ["JOB", "FUNCTION", "STATUS", "AT", "SERVICE", "VIDEO", "COST"]
    assert line.split()[:3] == [record.id, "video_edit", "succeeded"]
    assert line.endswith(f"{record.video_seconds:.1f} s  USD {record.cost:.2f}")
    assert beneath.endswith(record.output.path or "")
    assert_nothing_cut(listed, record.output.path or "")

    shown = runner.invoke(app, ["catalog", "show", record.id], env=wide).output
    assert_nothing_cut(shown, record.output.path or "", record.task_id or "")
    assert "file://" not in shown
    sent = {item.staged_url for items in record.inputs.values() for item in items}
    assert len(sent) == 2
    for url in sent:
        assert url
        assert url.startswith(env.s3.endpoint)
        assert "?" not in url
        assert f"sent as  {url}" in shown
    history = " ".join(shown.split("history (UTC)")[1].split())
    assert history.count(f" output {record.output.path} ") == 1
    assert history.count(" published s3://") == 1
    assert "at service" in shown
    assert f"{record.video_seconds:g} s of video at USD 0.10/s" in " ".join(shown.split())

    as_json = json.loads(runner.invoke(app, ["catalog", "show", record.id, "--json"]).stdout)
    assert as_json["request"]["input"]["video_url"] in sent
    assert "file://" not in json.dumps(as_json["request"])


def test_a_run_is_the_plan_it_showed_its_inputs_fetched_once(
    vace_env: Callable[..., VaceEnv], media: MediaFactory, file_server: FileServer
) -> None:
    """`vaceflow run` prepares the job (the plan and estimate it prints), then runs that
    same preparation through the flow: an input on the web is fetched once."""
    env = vace_env()
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="fetched-once")
    url = file_server.url(clip)
    result = CliRunner().invoke(
        app,
        ["run", "video_outpainting", "--prompt", "fetched once", "--video", url, "--json"],
        env={"PREFECT_API_URL": env.env["PREFECT_API_URL"], "COLUMNS": str(WIDTH)},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert env.submissions() == 1
    assert file_server.gets[urlsplit(url).path] == 1


def test_the_conform_plan_names_paths_whole(cli: CliRunner, media: MediaFactory) -> None:
    deep = media.root / "a folder with a long name, as phones and cameras make them" / "clip.mp4"
    deep.parent.mkdir(exist_ok=True)
    ffmpeg_file(
        deep, "-i", str(media.video(width=320, height=240, fps=12, seconds=1)), "-c", "copy"
    )
    result = cli.invoke(
        app,
        ["run", "video_outpainting", "--prompt", "wider", "--video", str(deep), "--dry-run"],
        env={"COLUMNS": str(WIDTH)},
    )
    assert result.exit_code == 0, result.output
    assert_nothing_cut(result.stdout)
    assert f"video  {deep}" in result.stdout
    assert "12 fps" in result.stdout


def test_a_table_too_wide_for_the_terminal_becomes_blocks() -> None:
    from vaceflow.cli.layout import Column, table

    rows = [["vf_6ut4bze2bnyb", "video_outpainting", "succeeded", "USD 0.40"]]
    columns = [Column("job"), Column("function"), Column("status"), Column("cost", right=True)]
    wide = table(columns, rows, below=[["/a/long/path/to/the/video.mp4"]], width_=80)
    assert wide[1].split("  ") == rows[0]
    narrow = table(columns, rows, below=[["/a/long/path/to/the/video.mp4"]], width_=40)
    assert narrow == [
        "vf_6ut4bze2bnyb",
        "  function  video_outpainting",
        "  status    succeeded",
        "  cost      USD 0.40",
        "  /a/long/path/to/the/video.mp4",
    ]
