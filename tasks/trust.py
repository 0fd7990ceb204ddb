"""Which trust policy the flow run in progress applies to its inputs (`vaceflow.trust`
says what each policy allows).

- A flow called from Python (the CLI, a notebook, a test) reads what its caller gave:
  the person running the process chose those inputs.
- A run a deployment started (a worker, `vaceflow serve`, the Prefect UI's forms), or
  any flow under one, reads only what the owner's settings allow.
- A flow that runs other people's jobs itself (`watch`: files from an intake), or
  lends its own files to the flows it calls (`long_video`: its tail clips), sets the
  policy for those flows with `policy_scope`; flows called inside inherit it.

The policy travels in a context variable, not as a parameter, on purpose: a flow's
parameters are a deployment's form, and whoever fills in the form must not be able to
choose the policy it is judged by. Below the flows it is an explicit parameter.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar

from tasks.scope import bound
from vaceflow.settings import Settings
from vaceflow.trust import TrustPolicy

__all__ = ["policy_scope", "run_policy", "started_by_deployment"]

_scoped: ContextVar[TrustPolicy | None] = ContextVar("vaceflow_trust_policy", default=None)


def run_policy(settings: Settings) -> TrustPolicy:
    """The policy for this flow run's inputs: an enclosing flow's, else the owner's
    for a run a deployment started, else open (the caller chose the inputs)."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    if started_by_deployment():
        return TrustPolicy.from_settings(settings)
    return TrustPolicy.open()


def policy_scope(policy: TrustPolicy) -> AbstractContextManager[TrustPolicy]:
    """Flows (and tasks) started inside apply `policy`."""
    return bound(_scoped, policy)


def started_by_deployment() -> bool:
    """Whether the flow run in progress, or a run it is part of, came from a deployment.

    Fails closed: when the API cannot say, the run is taken for a deployment's."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None:
        return False
    if run.deployment_id is not None:
        return True
    if run.parent_task_run_id is None:
        return False
    from prefect.client.orchestration import get_client

    try:  # a subflow no enclosing flow gave a policy to: ask for its parents
        with get_client(sync_client=True) as client:
            while run.parent_task_run_id is not None:
                parent = client.read_task_run(run.parent_task_run_id)
                if parent.flow_run_id is None:
                    return False
                run = client.read_flow_run(parent.flow_run_id)
                if run.deployment_id is not None:
                    return True
    except Exception:
        return True
    return False
