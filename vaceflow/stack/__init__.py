"""The local dev stack: a real S3 server (SeaweedFS) and the DashScope emulator.

processes.py  detached processes found again by pid (and checked by command line)
seaweedfs.py  `weed mini` on free loopback ports; also the test suite's S3 server
control.py    `vaceflow dev up / down / status`, the state file and the env file
"""

from __future__ import annotations

from vaceflow.stack.control import ServiceStatus, StackState, down, stack_env, status, up
from vaceflow.stack.seaweedfs import SeaweedFS, SeaweedPorts, find_weed

__all__ = [
    "SeaweedFS",
    "SeaweedPorts",
    "ServiceStatus",
    "StackState",
    "down",
    "find_weed",
    "stack_env",
    "status",
    "up",
]
