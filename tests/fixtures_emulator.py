"""Fixtures that start the local DashScope emulator on loopback.

`emulator` is a running EmulatorServer with the test key and a short latency;
`start_emulator(**config)` starts more, each stopped at the end of the test.
`emulator_state(server)` reads `/_emulator/tasks` (what was submitted, counters);
`advance_clock(server, seconds)` moves its clock; `api_client` and `wait_final` talk
to it as a plain DashScope caller would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from vaceflow.emulator import EmulatorConfig, EmulatorServer

TEST_KEY = "sk-test-emulator-key"
TEST_LATENCY = 0.3

StartEmulator = Callable[..., EmulatorServer]


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    """Factory: `start_emulator(latency=1, submit_qps=0, ...)` -> a running server."""
    servers: list[EmulatorServer] = []

    def start(**overrides: Any) -> EmulatorServer:
        settings: dict[str, Any] = {"api_key": TEST_KEY, "latency": TEST_LATENCY, "seed": 7}
        settings.update(overrides)
        server = EmulatorServer(EmulatorConfig(**settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def emulator(start_emulator: StartEmulator) -> EmulatorServer:
    """A running emulator with the account's default limits and TEST_KEY."""
    return start_emulator()


def emulator_state(server: EmulatorServer) -> dict[str, Any]:
    """Everything the emulator recorded: tasks (bodies, status, queries) and counters."""
    response = httpx.get(server.root_url + "/_emulator/tasks", timeout=10)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


def advance_clock(server: EmulatorServer, seconds: float) -> None:
    """Move the emulator's clock forward: reach a 24 h or 48 h expiry without waiting."""
    httpx.post(server.root_url + "/_emulator/clock", params={"advance": seconds}).raise_for_status()


def set_latency(server: EmulatorServer, seconds: float) -> None:
    """How long the emulator's tasks stay RUNNING from now on, those running too: hold
    tasks on the service for as long as a test needs, then let them end."""
    httpx.post(
        server.root_url + "/_emulator/latency", params={"seconds": seconds}
    ).raise_for_status()


def submission_count(server: EmulatorServer) -> int:
    """How many submissions the emulator accepted (each would be billed if it succeeded)."""
    return len(emulator_state(server)["tasks"])


SUBMIT_PATH = "/services/aigc/video-generation/video-synthesis"


def api_client(
    server: EmulatorServer, *, key: str | None = TEST_KEY, async_header: bool = True
) -> httpx.Client:
    """A plain httpx client with the headers a DashScope caller sends."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if async_header:
        headers["X-DashScope-Async"] = "enable"
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


def wait_final(client: httpx.Client, task_id: str, *, timeout: float = 120) -> dict[str, Any]:
    """Poll `GET /tasks/{id}` until the task ends; the final body."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/tasks/{task_id}").raise_for_status().json()
        if body["output"]["task_status"] not in ("PENDING", "RUNNING", "SUSPENDED"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {body['output']['task_status']}")
        time.sleep(0.1)
