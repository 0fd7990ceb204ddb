"""The Prefect UI in a real browser: a person starts `video_outpainting` from the
deployment's custom-run form and sees the run complete with its contact sheet.

Headless Chromium from the system's packages (Debian's `chromium`), driven by
Playwright; never a downloaded browser. Skipped only when no browser is installed.
"""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tasks.record import artifact_key
from tests.fixtures_flows import VaceEnv
from tests.fixtures_serve import OUTPAINTING, prefect_client
from tests.fixtures_serve import served as served  # the fixture
from vaceflow.catalog import Catalog, JobStatus
from vaceflow.samples import make_samples

SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "ui-finished-run.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def field(page: Any, label: str, control: str) -> Any:
    """The innermost form group labelled `label` (the UI's labels name no input), its
    `control` element."""
    group = (
        page.locator("div")
        .filter(has=page.get_by_text(label, exact=True))
        .filter(has=page.locator(control))
        .last
    )
    return group.locator(control).first


def run_ids_of(api: str, deployment_id: Any) -> set[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with prefect_client(api) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return {run.id for run in runs}


def new_run_of(api: str, deployment_id: Any, before: set[Any], deadline: float) -> Any:
    """The run the form made: the deployment (same name, same id) may have runs of
    earlier tests on this session's server."""
    with prefect_client(api) as client:
        while True:
            made = run_ids_of(api, deployment_id) - before
            if made:
                (run_id,) = made
                return client.read_flow_run(run_id)
            assert time.monotonic() < deadline, "the form's Submit started no flow run"
            time.sleep(1)


def final_state(api: str, flow_run_id: Any, deadline: float) -> Any:
    with prefect_client(api) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_final():
                return state
            assert time.monotonic() < deadline, f"the run is still {state}"
            time.sleep(1)


@pytest.mark.timeout(600)
def test_custom_run_from_the_ui_completes_with_its_contact_sheet(
    served: tuple[VaceEnv, str], tmp_path: Path
) -> None:
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    env, api = served
    ui = api.removesuffix("/api")
    video = make_samples(tmp_path / "samples").video
    with prefect_client(api) as client:
        deployment = client.read_deployment_by_name(OUTPAINTING)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{ui}/deployments")
            page.get_by_role("link", name="video-outpainting").first.click()
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run", exact=True).click()

            # The form comes from the flow's signature: described, typed fields.
            expect(page.get_by_text("What the new surroundings should show.")).to_be_visible()
            # a prompt of its own: no other test's job can answer it from the catalog
            prompt = f"A cosy living room around the screen ({secrets.token_hex(3)})."
            field(page, "prompt", "textarea").fill(prompt)
            field(page, "video", "textarea").fill(str(video))
            field(page, "left_scale (Optional)", "input").fill("1.5")
            before = run_ids_of(api, deployment.id)
            page.get_by_role("button", name="Submit", exact=True).click()

            run = new_run_of(api, deployment.id, before, time.monotonic() + 60)
            page.goto(f"{ui}/runs/flow-run/{run.id}")
            # the page shows task runs' states too: ask the API when the flow run ended
            ended = final_state(api, run.id, time.monotonic() + 300)
            assert ended.is_completed(), f"the run ended {ended.type}: {ended.message}"
            page.reload()
            expect(page.get_by_text("Completed", exact=True).first).to_be_visible()

            job = Catalog.from_settings().find(flow_run_id=str(run.id))
            assert job is not None
            assert (job.status, job.prompt) == (JobStatus.SUCCEEDED, prompt)
            assert job.parameters.get("left_scale") == 1.5
            page.get_by_text("Artifacts", exact=True).click()
            page.get_by_text(artifact_key(job.id, "thumbnail")).first.click()
            sheet = page.get_by_role("img", name=f"contact sheet of {job.id}")
            expect(sheet).to_be_visible()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=sheet.element_handle()
            )
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        except Exception:
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT.with_name("ui-failed.png")), full_page=True)
            raise
        finally:
            browser.close()
    assert env.submissions() == 1
