"""Which flow runs the team stack's zombie watch follows, and what they promise it.

The watch (`vaceflow.stack.prefect_server.zombie_watch`) sets CRASHED a run that has
been silent too long. It follows the runs of vaceflow's deployments only (their tag),
and every process that runs one beats every 30 s (`WATCHED_ENV`): the pool's job
variables carry it to any process worker, the stack's workers and `vaceflow serve` set
it too. Any other flow run beats every 180 s by Prefect's default.
"""

from __future__ import annotations

__all__ = ["FLOW_HEARTBEAT_SECONDS", "WATCHED_ENV", "WATCHED_TAG"]

WATCHED_TAG = "vaceflow"
"""The tag every vaceflow deployment carries (`deployments.catalog`)."""
FLOW_HEARTBEAT_SECONDS = 30
"""How often a watched run says it is alive (Prefect's minimum)."""
WATCHED_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(FLOW_HEARTBEAT_SECONDS)}
"""The variables of every process that runs a watched run."""
