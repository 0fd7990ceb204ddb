"""`vaceflow emulator` as a user runs it: a foreground server, the key from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port

SECRET = "sk-cli-secret-never-printed"


def test_cli_serves_the_emulator_without_printing_the_key() -> None:
    port = free_port()
    env = {**os.environ, "DASHSCOPE_API_KEY": SECRET}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from vaceflow.cli import main; main()",
            "emulator",
            "--port",
            str(port),
            "--latency",
            "0.1",
            "--region",
            "beijing",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(base + "/_emulator/health").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "the emulator did not come up"
                time.sleep(0.1)
        right = httpx.get(base + "/api/v1/tasks", headers={"Authorization": f"Bearer {SECRET}"})
        wrong = httpx.get(base + "/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert health["model"] == "wanx2.1-vace-plus"
    assert (right.status_code, wrong.status_code) == (200, 401)
    assert f"{base}/api/v1" in output
    assert SECRET not in output


def test_cli_refuses_an_unknown_fault_kind() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vaceflow.cli import main; main()",
            "emulator",
            "--api-key",
            "k",
            "--port",
            "0",
            "--fault",
            "meteor",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "meteor" in result.stderr + result.stdout
