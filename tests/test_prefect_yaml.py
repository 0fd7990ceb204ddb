"""`prefect deploy --all` works too: prefect.yaml declares what deployments/catalog.py
declares (so the two cannot drift), and a real Prefect server takes it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.catalog import DEPLOYMENTS, DeploymentSpec
from tests.fixtures_serve import clean_env, forget_deployments, prefect_client
from vaceflow.heartbeat import WATCHED_ENV
from vaceflow.stack.state import StackState

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = str(StackState.model_fields["pool"].default)
"""The pool `vaceflow dev up --team` makes, and `vaceflow deploy --pool` is shown with."""


def declared() -> dict[str, dict[str, Any]]:
    text = (ROOT / "prefect.yaml").read_text()
    return {d["name"]: d for d in yaml.safe_load(text)["deployments"]}


def trigger_of(spec: DeploymentSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "match": t.match.model_dump(),
            "expect": sorted(t.expect),
            "parameters": t.parameters,
        }
        for t in spec.triggers
    ]


def test_prefect_yaml_declares_exactly_the_catalog() -> None:
    yaml_deployments = declared()
    assert sorted(yaml_deployments) == sorted(spec.name for spec in DEPLOYMENTS)
    for spec in DEPLOYMENTS:
        d = yaml_deployments[spec.name]
        assert d["entrypoint"] == spec.entrypoint, spec.name
        assert d["description"] == spec.description, spec.name
        assert tuple(d["tags"]) == spec.tags, spec.name
        assert d["work_pool"]["name"] == POOL, spec.name
        assert d["work_pool"]["job_variables"]["env"] == WATCHED_ENV, spec.name
        schedules = d.get("schedules") or []
        assert [s.get("interval") for s in schedules if "interval" in s] == (
            [spec.interval] if spec.interval else []
        ), spec.name
        assert [s.get("cron") for s in schedules if "cron" in s] == (
            [spec.cron] if spec.cron else []
        ), spec.name
        triggers = [
            {
                "name": t["name"],
                "match": t["match"],
                "expect": sorted(t["expect"]),
                "parameters": t["parameters"],
            }
            for t in d.get("triggers") or []
        ]
        assert triggers == trigger_of(spec), spec.name


def test_prefect_deploy_all_registers_them_on_a_real_server(
    prefect_api: str, tmp_path: Path
) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate

    with prefect_client(prefect_api) as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
    env = clean_env(PREFECT_API_URL=prefect_api, PREFECT_HOME=str(tmp_path / "prefect-home"))
    try:
        result = subprocess.run(
            [PREFECT, "--no-prompt", "deploy", "--all"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        with prefect_client(prefect_api) as client:
            found = {d.name: d for d in client.read_deployments()}
            automations = {
                d.name: client.read_resource_related_automations(f"prefect.deployment.{d.id}")
                for d in found.values()
            }
    finally:
        forget_deployments(prefect_api)

    assert sorted(found) == sorted(spec.name for spec in DEPLOYMENTS)
    for spec in DEPLOYMENTS:
        deployment = found[spec.name]
        assert deployment.entrypoint == spec.entrypoint
        assert deployment.work_pool_name == POOL
        assert deployment.job_variables == {"env": WATCHED_ENV}  # the zombie watch's beat
        assert sorted(deployment.tags) == sorted(spec.tags)
        assert deployment.description == spec.description
        assert deployment.pull_steps == [  # workers run the flows from this folder
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        intervals = [s.schedule.interval.total_seconds() for s in deployment.schedules
                     if getattr(s.schedule, "interval", None)]  # fmt: skip
        assert intervals == ([spec.interval] if spec.interval else [])
        made = automations[spec.name]
        assert len(made) == len(spec.triggers)
        for automation, trigger in zip(made, spec.triggers, strict=True):
            assert automation.trigger.expect == trigger.expect
            assert automation.actions[0].parameters == trigger.parameters
