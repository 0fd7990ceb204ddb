"""The user's situations, met for real: each prints two lines and exits with its own code.

A Prefect server, S3 store, DashScope endpoint or catalog database on a closed port, a
missing key, a key the emulator refuses: `vaceflow` as a user runs it (a subprocess),
never a traceback unless asked for, and nothing submitted. The stack that is down is
in `test_dev_stack.py` (it brings a real stack up and down).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fixtures_emulator import TEST_KEY, StartEmulator, submission_count
from tests.fixtures_serve import VACEFLOW, clean_env
from tests.media import MediaFactory
from vaceflow.cli.running import EXIT


def vaceflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VACEFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def closed_port_url(path: str = "") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


def assert_said_plainly(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit `code`, one or two lines on stderr naming `words`, no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in result.stderr


@pytest.fixture
def user(tmp_path: Path) -> dict[str, str]:
    """A user's environment: a data folder of their own, no settings from outside."""
    return clean_env(VACEFLOW_DATA_DIR=str(tmp_path / "data"), COLUMNS="80")


def run_args(media: MediaFactory) -> list[str]:
    video = media.video(width=320, height=240, seconds=1)
    return ["run", "video_outpainting", "--prompt", "wider", "--video", str(video),
            "--left-scale", "1.5"]  # fmt: skip


def test_a_missing_key(user: dict[str, str], media: MediaFactory, tmp_path: Path) -> None:
    result = vaceflow(run_args(media), user, tmp_path)
    assert_said_plainly(result, EXIT["no_key"], "DASHSCOPE_API_KEY", "dev up")


def test_a_dashscope_endpoint_that_does_not_answer(
    user: dict[str, str], media: MediaFactory, tmp_path: Path
) -> None:
    env = user | {"DASHSCOPE_API_KEY": TEST_KEY, "DASHSCOPE_HTTP_BASE_URL": closed_port_url()}
    result = vaceflow(run_args(media), env, tmp_path)
    assert_said_plainly(result, EXIT["service_unreachable"], "connection refused")


def test_an_s3_store_that_does_not_answer(
    user: dict[str, str], media: MediaFactory, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator()
    endpoint = closed_port_url()
    env = user | {
        "DASHSCOPE_API_KEY": TEST_KEY,
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "VACEFLOW_STAGING": "s3",
        "VACEFLOW_S3_BUCKET": "b",
        "VACEFLOW_S3_ENDPOINT_URL": endpoint,
    }
    result = vaceflow(run_args(media), env, tmp_path)
    assert_said_plainly(result, EXIT["s3_unreachable"], endpoint, "VACEFLOW_S3_ENDPOINT_URL")
    assert submission_count(emulator) == 0


def test_a_prefect_server_that_does_not_answer(
    user: dict[str, str], media: MediaFactory, tmp_path: Path, start_emulator: StartEmulator
) -> None:
    emulator = start_emulator()
    api = closed_port_url("/api")
    env = user | {
        "DASHSCOPE_API_KEY": TEST_KEY,
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "VACEFLOW_STAGING": "dashscope",
        "PREFECT_API_URL": api,
    }
    result = vaceflow(run_args(media), env, tmp_path)
    assert_said_plainly(result, EXIT["prefect_unreachable"], api, "PREFECT_API_URL")
    assert submission_count(emulator) == 0
    # The same run as JSON: the situation as data, on stdout.
    as_json = vaceflow([*run_args(media), "--json"], env, tmp_path)
    assert as_json.returncode == EXIT["prefect_unreachable"]
    assert '"outcome": "prefect_unreachable"' in as_json.stdout


def test_a_key_the_service_refuses_mid_run(
    user: dict[str, str],
    media: MediaFactory,
    tmp_path: Path,
    start_emulator: StartEmulator,
    prefect_api: str,
) -> None:
    """Every service answers, but the submit is refused (401) with a Prefect server
    named: the user reads two lines, not a traceback."""
    emulator = start_emulator()
    env = user | {
        "DASHSCOPE_API_KEY": "sk-not-this-one",
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "VACEFLOW_STAGING": "dashscope",
        "PREFECT_API_URL": prefect_api,
    }
    result = vaceflow(run_args(media), env, tmp_path)
    assert result.returncode == EXIT["no_key"], result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "sk-not-this-one" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]]
    assert "refused the API key" in errors[0]
    assert submission_count(emulator) == 0


def test_a_catalog_database_that_does_not_answer_and_debug(
    user: dict[str, str], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://vaceflow:s3cret-pw@127.0.0.1:{free_port()}/catalog"
    env = user | {"VACEFLOW_CATALOG_URL": url}
    result = vaceflow(["catalog", "list"], env, tmp_path)
    assert_said_plainly(result, EXIT["catalog_unreachable"], "VACEFLOW_CATALOG_URL")
    assert "s3cret-pw" not in result.stderr

    # The traceback, only when asked for; the exit code stays the situation's.
    for args, extra in (
        (["--debug", "catalog", "list"], {}),
        (["catalog", "list"], {"VACEFLOW_DEBUG": "1"}),
    ):
        debug = vaceflow(args, env | extra, tmp_path)
        assert debug.returncode == EXIT["catalog_unreachable"]
        assert "Traceback" in debug.stderr
