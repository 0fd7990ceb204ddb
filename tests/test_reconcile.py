"""Settling an uncertain submit from the provider's task list (`vaceflow.reconcile`).

The rules on their own first (pure), then against the emulator's real task list: the
tasks a catalog's rows were sent for are real tasks the emulator made, the windows are
the rows' own, and the list is read page by page over HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FileServer
from tests.fixtures_emulator import TEST_KEY, StartEmulator
from tests.media import MediaFactory
from vaceflow.catalog import Catalog, JobStatus
from vaceflow.client import Client
from vaceflow.identity import job_identity
from vaceflow.jobs import parse_job
from vaceflow.limits import Role
from vaceflow.ratebudget import LocalRateBudget
from vaceflow.reconcile import Verdict, Window, decide, reconcile
from vaceflow.responses import TaskListItem, TaskStatus

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def item(task_id: str, seconds: float) -> TaskListItem:
    created = T0 + timedelta(seconds=seconds)
    return TaskListItem(
        task_id=task_id, status=TaskStatus.PENDING, gmt_create=int(created.timestamp() * 1000)
    )


WINDOW = Window(T0, T0 + timedelta(seconds=60))


def test_one_unclaimed_task_in_the_window_is_the_jobs() -> None:
    listed = [item("before", -1), item("ours", 30), item("held", 31), item("after", 61)]
    verdict, found = decide(WINDOW, listed, known={"held"})
    assert (verdict, [c.task_id for c in found]) == (Verdict.FOUND, ["ours"])


def test_no_unclaimed_task_means_the_service_never_accepted_it() -> None:
    assert decide(WINDOW, [item("held", 10)], known={"held"}) == (Verdict.NONE, ())
    assert decide(WINDOW, [], known=set()) == (Verdict.NONE, ())


def test_two_candidates_or_a_rival_leave_it_to_a_person() -> None:
    two = [item("a", 10), item("b", 20)]
    assert decide(WINDOW, two, known=set())[0] is Verdict.AMBIGUOUS
    verdict, found = decide(WINDOW, [item("a", 10)], known=set(), rivals=["vf_other"])
    assert (verdict, len(found)) == (Verdict.AMBIGUOUS, 1)


def test_window_edges_are_inside_and_a_task_without_a_time_is_not() -> None:
    assert WINDOW.holds(item("start", 0))
    assert WINDOW.holds(item("end", 60))
    assert not WINDOW.holds(TaskListItem(task_id="x", status=TaskStatus.PENDING))
    later = Window(WINDOW.end, WINDOW.end + timedelta(seconds=5))
    assert WINDOW.overlaps(later)
    assert later.overlaps(WINDOW)
    apart = Window(WINDOW.end + timedelta(seconds=1), WINDOW.end + timedelta(seconds=9))
    assert not WINDOW.overlaps(apart)


# --- against the emulator's task list ---------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}").upgrade() as cat:
        yield cat


@pytest.fixture(scope="module")
def body(media: MediaFactory, file_server: FileServer) -> dict[str, Any]:
    video = file_server.url(media.video(width=320, height=240, fps=24, seconds=1.0))
    return {"input": {"function": "video_outpainting", "prompt": "p", "video_url": video}}


class Service:
    """An emulator whose tasks never end during a test, and a client on it."""

    def __init__(self, start: StartEmulator) -> None:
        self.server = start(submit_qps=0, latency=600, concurrency=1)
        self.client = Client(
            api_key=TEST_KEY, base_url=self.server.base_url, budget=LocalRateBudget()
        )

    def submit(self, body: dict[str, Any]) -> str:
        return self.client.submit(body).output.task_id


@pytest.fixture
def service(start_emulator: StartEmulator) -> Iterator[Service]:
    svc = Service(start_emulator)
    yield svc
    svc.client.close()


def sending_row(catalog: Catalog, body: dict[str, Any], name: str, window: float = 2.0) -> str:
    """A job whose submit request is marked as gone out, answer not (yet) written."""
    job = parse_job(body | {"input": body["input"] | {"prompt": name}})
    digest = hashlib.sha256(name.encode()).hexdigest()
    job_id = catalog.claim(job_identity(job, {Role.VIDEO: [digest]}), job).id
    assert catalog.begin_submit(job_id, "lost-run", 60)
    assert catalog.mark_sending(job_id, "lost-run", window)
    return job_id


def unsettled(catalog: Catalog, job_id: str) -> bool:
    """Still waiting for its answer or a person (the tests move `now`, not the clock)."""
    row = catalog.get(job_id)
    return row.task_id is None and row.status in (JobStatus.SENDING, JobStatus.UNCERTAIN)


def settle(catalog: Catalog, service: Service, job_id: str, **options: Any) -> Any:
    after = catalog.get(job_id).send_until
    assert after is not None
    options = {"margin": 1.0, "now": after + timedelta(seconds=2)} | options
    return reconcile(catalog, service.client, job_id, **options)


def test_the_one_task_made_in_the_window_is_recorded(
    catalog: Catalog, service: Service, body: dict[str, Any]
) -> None:
    job_id = sending_row(catalog, body, "lost answer")
    task_id = service.submit(body)  # the service made it; the answer never reached us

    early = reconcile(catalog, service.client, job_id, margin=1.0)
    assert early.verdict is Verdict.EARLY  # read only once the window has closed
    found = settle(catalog, service, job_id)
    assert found.verdict is Verdict.FOUND
    row = catalog.get(job_id, history=True)
    assert (row.task_id, row.status, row.attempts) == (task_id, JobStatus.SUBMITTED, 1)
    assert "reconciled" in (row.history[-1].note or "")
    assert task_id in (row.history[-1].note or "")
    assert settle(catalog, service, job_id).verdict is Verdict.SETTLED


def test_a_submit_the_list_does_not_show_is_released_once(
    catalog: Catalog, service: Service, body: dict[str, Any]
) -> None:
    service.submit(body)  # another job's task, made before this submit left
    other = catalog.claim(job_identity(parse_job(body), {Role.VIDEO: ["0" * 64]}), parse_job(body))
    catalog.begin_submit(other.id, "w", 60)
    job_id = sending_row(catalog, body, "never arrived")
    held = service.submit(body)  # in the window, but another job's recorded task
    catalog.record_submitted(other.id, held, None)

    # No clock margin: the first task was made just before this submit left.
    preview = settle(catalog, service, job_id, apply=False, margin=0.0)
    assert preview.verdict is Verdict.NONE
    assert unsettled(catalog, job_id)  # a dry run changes nothing
    assert settle(catalog, service, job_id, margin=0.0).verdict is Verdict.NONE
    row = catalog.get(job_id, history=True)
    assert (row.status, row.attempts, row.task_id) == (JobStatus.NEW, 0, None)
    assert "no unclaimed task" in (row.history[-1].note or "")


def test_the_list_is_read_page_by_page(
    catalog: Catalog, service: Service, body: dict[str, Any]
) -> None:
    job_id = sending_row(catalog, body, "many tasks", window=5.0)
    made = [service.submit(body) for _ in range(5)]
    for n, task_id in enumerate(made[1:]):  # every task but one belongs to a known job
        held = sending_row(catalog, body, f"known {n}")
        catalog.record_submitted(held, task_id, None)
    found = settle(catalog, service, job_id, page_size=2)
    assert found.verdict is Verdict.FOUND
    assert catalog.get(job_id).task_id == made[0]


def test_two_unanswered_submits_in_the_same_seconds_are_left_to_a_person(
    catalog: Catalog, service: Service, body: dict[str, Any]
) -> None:
    first, second = sending_row(catalog, body, "one"), sending_row(catalog, body, "two")
    tasks = {service.submit(body), service.submit(body)}
    for job_id in (first, second):
        found = settle(catalog, service, job_id)
        assert found.verdict is Verdict.AMBIGUOUS
        assert {c.task_id for c in found.candidates} == tasks
        assert unsettled(catalog, job_id)
        assert all(t in (catalog.history(job_id)[-1].note or "") for t in tasks)
    settle(catalog, service, first)
    assert len(catalog.history(first)) == len(catalog.history(second)), "said once"


def test_a_window_older_than_the_list_or_a_failing_list_is_left_to_a_person(
    catalog: Catalog, service: Service, start_emulator: StartEmulator, body: dict[str, Any]
) -> None:
    job_id = sending_row(catalog, body, "a day ago")
    old = settle(catalog, service, job_id, now=datetime.now(UTC) + timedelta(hours=25))
    assert old.verdict is Verdict.TOO_OLD
    broken = start_emulator(fault_rate=1.0, faults={"error_500"})
    with Client(api_key=TEST_KEY, base_url=broken.base_url) as client:
        after = catalog.get(job_id).send_until
        assert after is not None
        failed = reconcile(catalog, client, job_id, margin=1.0, now=after + timedelta(seconds=2))
    assert failed.verdict is Verdict.LIST_FAILED
    assert unsettled(catalog, job_id)
