"""vaceflow's deployments, declared once: `vaceflow serve` and `vaceflow deploy` read
this list. See `deployments.catalog`."""

from __future__ import annotations

from deployments.catalog import DEPLOYMENTS, DeploymentSpec, deployments

__all__ = ["DEPLOYMENTS", "DeploymentSpec", "deployments"]
