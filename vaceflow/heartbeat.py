"""Which flow runs the team stack's zombie watch follows, and what they promise it.

The watch (`vaceflow.stack.prefect_server.zombie_watch`) sets CRASHED a run that has
been silent too long. It follows the runs tagged `WATCHED_TAG` only: those of vaceflow's
deployments, and every run `flows.pool.run_on_pool` starts (on any deployment). Every
process that runs one beats every 30 s (`WATCHED_ENV`): the job variables of those
deployments and runs carry it to any process worker; the stack's workers and `vaceflow
serve` set it too. Any other flow run beats every 180 s by Prefect's default.
"""

from __future__ import annotations

__all__ = ["FLOW_HEARTBEAT_SECONDS", "WATCHED_ENV", "WATCHED_TAG"]

WATCHED_TAG = "vaceflow"
"""The tag every vaceflow deployment carries (`deployments.catalog`)."""
FLOW_HEARTBEAT_SECONDS = 30
"""How often a watched run says it is alive (Prefect's minimum)."""
WATCHED_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(FLOW_HEARTBEAT_SECONDS)}
"""The variables of every process that runs a watched run."""
