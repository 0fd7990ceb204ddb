"""Submit exactly once: racers on one SQLite file, claiming and submitting the same job.

Each round, every racer waits at a barrier, then claims the round's job and tries to
take the submit lease. Exactly one racer may win each round, every round, and all of
them must have been handed the same row.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

from vaceflow.catalog import Catalog, JobStatus
from vaceflow.identity import job_identity
from vaceflow.jobs import parse_job
from vaceflow.limits import Role

ROUNDS = 40

Outcome = tuple[int, str, bool]
"""(round, job id, won the submit)"""


def _job(round_no: int) -> tuple[str, Any]:
    job = parse_job(
        {
            "input": {
                "function": "video_outpainting",
                "prompt": f"race round {round_no}",
                "video_url": "https://b.example/in.mp4",
            }
        }
    )
    return job_identity(job, {Role.VIDEO: [f"{round_no:064x}"]}), job


def race(catalog: Catalog, owner: str, barrier: Any, rounds: int) -> list[Outcome]:
    outcomes = []
    for round_no in range(rounds):
        identity, job = _job(round_no)
        barrier.wait(timeout=60)
        record = catalog.claim(identity, job)
        # A run arriving takes the row over from one that has sent nothing: who sends is
        # decided by the last compare-and-set before the request leaves.
        taken = catalog.begin_submit(record.id, owner, lease_seconds=300)
        won = taken and catalog.mark_sending(record.id, owner, window_seconds=30)
        outcomes.append((round_no, record.id, won))
    return outcomes


def process_racer(url: str, owner: str, barrier: Any, results: Any, rounds: int) -> None:
    """One racing process: opens (and migrates) the catalog itself, as a run would."""
    with Catalog(url).upgrade() as catalog:
        results.put((owner, race(catalog, owner, barrier, rounds)))


def check(catalog: Catalog, outcomes: list[list[Outcome]]) -> None:
    for round_no in range(ROUNDS):
        this_round = [o for racer in outcomes for o in racer if o[0] == round_no]
        assert len(this_round) == len(outcomes)
        assert len({job_id for _, job_id, _ in this_round}) == 1, this_round
        assert sum(won for _, _, won in this_round) == 1, this_round
    jobs = catalog.list_jobs(limit=None)
    assert len(jobs) == ROUNDS
    assert all(j.status is JobStatus.SENDING and j.attempts == 1 for j in jobs)


def test_two_threads_submit_once(tmp_path: Path) -> None:
    barrier = threading.Barrier(2)
    results: dict[str, list[Outcome]] = {}
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}").upgrade() as catalog:

        def run(owner: str) -> None:
            results[owner] = race(catalog, owner, barrier, ROUNDS)

        threads = [threading.Thread(target=run, args=(f"thread-{n}",)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == 2, "a racing thread failed"
        check(catalog, list(results.values()))


def test_two_processes_submit_once(tmp_path: Path) -> None:
    """The processes also race to create the schema on a file that does not exist yet."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    racers = [
        ctx.Process(target=process_racer, args=(url, f"process-{n}", barrier, queue, ROUNDS))
        for n in range(2)
    ]
    for p in racers:
        p.start()
    try:
        outcomes = [queue.get(timeout=120)[1] for _ in racers]
    finally:
        for p in racers:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in racers] == [0, 0]
    with Catalog(url) as catalog:
        check(catalog, outcomes)
