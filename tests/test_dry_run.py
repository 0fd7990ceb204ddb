"""`vaceflow run ... --dry-run` and `vaceflow doctor`, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import free_port
from tests.fixtures_emulator import TEST_KEY
from tests.fixtures_s3 import S3Server
from tests.media import MediaFactory
from tests.test_media_conform import blurry_mask, picture
from vaceflow.cli import app
from vaceflow.emulator import EmulatorServer
from vaceflow.media.probe import probe


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path / "data"))
    for name in ("DASHSCOPE_API_KEY", "VACEFLOW_S3_BUCKET", "VACEFLOW_S3_ENDPOINT_URL",
                 "DASHSCOPE_HTTP_BASE_URL", "VACEFLOW_STAGING"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_dry_run_prepares_the_job_and_prints_json(
    cli: CliRunner, media: MediaFactory, tmp_path: Path
) -> None:
    video = media.video(width=320, height=240, fps=24, seconds=6)
    mask = blurry_mask(media, 160, 120)
    result = cli.invoke(
        app,
        ["run", "video_edit", "--prompt", "a red car", "--video", str(video),
         "--mask-image", str(mask), "--mask-frame-id", "3", "--mask-type", "fixed",
         "--seed", "7", "--no-prompt-extend", "--dry-run", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ready"] is True
    body = out["job"]
    assert body["input"]["function"] == "video_edit"
    assert body["input"]["mask_frame_id"] == 3
    assert body["parameters"] == {"mask_type": "fixed", "seed": 7, "prompt_extend": False}
    conformed = Path(out["files"]["video"][0])
    assert body["input"]["video_url"] == conformed.as_uri()
    assert conformed.is_relative_to(tmp_path / "data")
    assert probe(conformed).duration == pytest.approx(5.0, abs=1e-3)
    assert probe(out["files"]["mask_image"][0]).resolution == "320x240"
    assert [r["input"] for r in out["reports"]] == ["video", "mask_image"]
    assert all(r["sha256"] for r in out["reports"])


def test_dry_run_human_output_shows_the_plan(cli: CliRunner, media: MediaFactory) -> None:
    video = media.video(width=320, height=240, fps=12, seconds=1)
    result = cli.invoke(
        app,
        ["run", "video_outpainting", "--prompt", "wider", "--video", str(video),
         "--left-scale", "1.5", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "16 fps" in result.stdout
    assert "ready" in result.stdout


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda m: m.text("notes.png"), "readable"),
        (lambda m: picture(m, 300, 3000), "360"),
    ],
    ids=["text-named-png", "cannot-fit"],
)
def test_refused_input_exits_2_naming_input_and_rule(
    cli: CliRunner, media: MediaFactory, make: object, rule: str
) -> None:
    image = make(media)  # type: ignore[operator]
    result = cli.invoke(
        app,
        ["run", "image_reference", "--prompt", "a cat", "--ref-image", str(image),
         "--dry-run", "--json"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["input"] == "ref_image"
    assert rule in error["rule"]


def test_invalid_parameters_exit_2(cli: CliRunner, media: MediaFactory) -> None:
    image = media.image()
    result = cli.invoke(
        app,
        ["run", "image_reference", "--prompt", "a cat", "--ref-image", str(image),
         "--ref-image", str(image), "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--obj-or-bg is required" in result.stderr  # the flag, not the API's field


def test_without_dry_run_nothing_is_submitted(cli: CliRunner, media: MediaFactory) -> None:
    result = cli.invoke(
        app, ["run", "video_outpainting", "--prompt", "wider", "--video", str(media.video())]
    )
    assert result.exit_code == 10  # the user's situation, not "the job failed"
    assert "DASHSCOPE_API_KEY" in result.output
    assert "nothing was submitted" in result.output


def test_doctor_reports_a_missing_key_and_never_prints_one(
    cli: CliRunner, emulator: EmulatorServer
) -> None:
    at_emulator = {"DASHSCOPE_HTTP_BASE_URL": emulator.base_url}
    result = cli.invoke(app, ["doctor", "--json"], env=at_emulator)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert result.exit_code == 1
    assert rows["dashscope key"]["status"] == "fail"
    assert "DASHSCOPE_API_KEY" in rows["dashscope key"]["fix"]
    assert rows["ffmpeg"]["status"] == "ok"
    assert rows["s3"]["status"] == "warn"
    assert rows["dashscope"]["status"] == "ok"

    # The key is checked against the service (its free task list), and never shown.
    result = cli.invoke(app, ["doctor"], env=at_emulator | {"DASHSCOPE_API_KEY": TEST_KEY})
    assert result.exit_code == 0, result.output
    assert TEST_KEY not in result.output
    secret = "sk-doctor-test-0123456789"
    result = cli.invoke(app, ["doctor", "--json"], env=at_emulator | {"DASHSCOPE_API_KEY": secret})
    assert result.exit_code == 1
    assert secret not in result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert "InvalidApiKey" in rows["dashscope key"]["detail"]
    assert "region" in rows["dashscope key"]["fix"]


def test_doctor_reaches_each_service_and_says_what_does_not_answer(cli: CliRunner) -> None:
    """Configured is not answering: servers on closed ports fail, each in words."""
    closed = {
        "DASHSCOPE_API_KEY": "sk-x",
        "DASHSCOPE_HTTP_BASE_URL": f"http://127.0.0.1:{free_port()}/api/v1",
        "VACEFLOW_S3_BUCKET": "b",
        "VACEFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
    }
    result = cli.invoke(app, ["doctor", "--json"], env=closed)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert result.exit_code == 1
    for name in ("prefect", "s3", "dashscope"):
        assert rows[name]["status"] == "fail", rows[name]
        assert "connection refused" in rows[name]["detail"]
        assert rows[name]["fix"]


def test_doctor_reaches_s3(cli: CliRunner, s3_server: S3Server) -> None:
    env = {
        "VACEFLOW_S3_BUCKET": s3_server.bucket,
        "VACEFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "VACEFLOW_S3_REGION": s3_server.region,
        "VACEFLOW_S3_ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    result = cli.invoke(app, ["doctor", "--json"], env=env)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["s3"]["status"] == "ok", rows["s3"]
    assert s3_server.secret_key not in result.stdout

    result = cli.invoke(app, ["doctor", "--json"], env={**env, "VACEFLOW_S3_BUCKET": "nope"})
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["s3"]["status"] == "fail"
    assert result.exit_code == 1
