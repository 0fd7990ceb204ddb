"""The Prefect side of `vaceflow serve` and `vaceflow deploy` (the CLI only parses and
reports): the declared deployments served by this process, or registered for a pool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from prefect.deployments.runner import RunnerDeployment
from prefect.flows import Flow, serve
from prefect.settings import get_current_settings

from deployments.catalog import DeploymentSpec, deployments
from tasks.runtime import apply_account_limits
from vaceflow.heartbeat import WATCHED_ENV
from vaceflow.settings import Settings

__all__ = ["api_url", "deploy_all", "pool_exists", "serve_all"]


def api_url() -> str | None:
    """The Prefect API this process reports to; None when none is configured."""
    return get_current_settings().api.url or None


def pool_exists(pool: str) -> bool:
    """Whether the server has the work pool `pool` (deploying to a missing one fails)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            return False
    return True


def serve_all(limit: int | None = None) -> None:
    """Serve every declared deployment from this process until it is interrupted. Each
    run is a process of this one's, beating as the stack's zombie watch expects
    (`vaceflow.heartbeat`)."""
    os.environ.update(WATCHED_ENV)
    serve(
        *[cast(RunnerDeployment, f.to_deployment(**s.options())) for s, f in deployments()],
        limit=limit,
        print_starting_message=False,
    )


def deploy_all(pool: str, source: Path) -> list[DeploymentSpec]:
    """Register every declared deployment for `pool`; its workers load the flows from
    `source` (this project's folder, seen at the same path: process workers, no image).
    The account's limits, which the workers share, are set on the server from the
    settings (`tasks.runtime.apply_account_limits`)."""
    done = []
    for spec, _ in deployments():
        flow = Flow.from_source(source=str(source), entrypoint=spec.entrypoint)
        flow.deploy(  # type: ignore[union-attr]
            work_pool_name=pool,
            job_variables={"env": WATCHED_ENV},  # the zombie watch's beat, on any worker
            print_next_steps=False,
            **spec.options(),
        )
        done.append(spec)
    apply_account_limits(Settings.load().account)
    return done
