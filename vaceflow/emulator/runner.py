"""A task's life: PENDING until a slot frees, RUNNING (fetch, check, render), then final.

Runs on the app's event loop; the blocking work (probing, ffmpeg) goes to threads.
Only `concurrency` tasks are RUNNING at once; a task succeeds no earlier than
`latency` seconds after it started running, but fails as soon as a check fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from vaceflow.emulator.clock import Clock
from vaceflow.emulator.config import EmulatorConfig
from vaceflow.emulator.faults import Faults
from vaceflow.emulator.fetch import fetch_inputs
from vaceflow.emulator.tasks import Task, TaskFailure, TaskStore
from vaceflow.emulator.uploads import UploadStore
from vaceflow.jobs import Job
from vaceflow.limits import Role
from vaceflow.responses import TaskStatus

if TYPE_CHECKING:
    from vaceflow.emulator.render import Rendered

__all__ = ["Runner", "result_path"]

PROMPT_EXTENSION = (
    " The scene is rendered in rich detail with natural light and smooth, steady camera motion."
)
"""What the emulator's 'prompt rewriting' adds, so `actual_prompt` differs visibly."""


def result_path(data_dir: Path, task_id: str) -> Path:
    return data_dir / "results" / f"{task_id}.mp4"


class Runner:
    """Schedules tasks on the running loop; `close()` cancels what is left."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        store: TaskStore,
        clock: Clock,
        faults: Faults,
        uploads: UploadStore,
        data_dir: Path,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._faults = faults
        self._uploads = uploads
        self._data_dir = data_dir
        self._slots = asyncio.Semaphore(config.concurrency)
        self._latency = config.latency
        self._latency_set = asyncio.Event()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._client = httpx.AsyncClient(
            timeout=config.fetch_timeout, follow_redirects=True, trust_env=False
        )

    def start(self, task: Task) -> None:
        self._jobs[task.task_id] = asyncio.get_running_loop().create_task(self._run(task))

    def cancel(self, task: Task) -> bool:
        """Cancel a PENDING task; False when it already left PENDING."""
        if task.status is not TaskStatus.PENDING:
            return False
        task.finish(TaskStatus.CANCELED, self._clock.now())
        job = self._jobs.pop(task.task_id, None)
        if job is not None:
            job.cancel()
        return True

    def set_latency(self, seconds: float) -> None:
        """How long a task stays RUNNING from now on, the tasks already running too: a
        test holds tasks on the service for as long as it needs, then lets them end."""
        if seconds < 0:
            raise ValueError("latency is seconds, 0 or more")
        self._latency = seconds
        self._latency_set.set()
        self._latency_set = asyncio.Event()

    async def _run_out(self, began: float) -> None:
        while (left := began + self._latency - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._latency_set.wait(), left)

    async def close(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel()
        for job in list(self._jobs.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        await self._client.aclose()

    async def _run(self, task: Task) -> None:
        try:
            async with self._slots:
                if task.status is not TaskStatus.PENDING:
                    return
                task.status = TaskStatus.RUNNING
                task.scheduled_time = self._clock.now()
                self._store.started()
                try:
                    await self._execute(task)
                finally:
                    self._store.stopped()
        finally:
            self._jobs.pop(task.task_id, None)

    async def _execute(self, task: Task) -> None:
        began = time.monotonic()
        work = self._data_dir / "tasks" / task.task_id
        try:
            if self._faults.task_fails():
                await asyncio.sleep(min(self._latency, 0.2))
                raise TaskFailure("InternalError.Algo", "An internal error occurred in the model.")
            files = await fetch_inputs(
                task.job,
                work,
                client=self._client,
                uploads=self._uploads,
                slack=self._config.fetch_slack_bytes,
            )
            out = result_path(self._data_dir, task.task_id)
            rendered = await asyncio.to_thread(_check_and_render, task.job, files, out)
        except TaskFailure as exc:
            task.finish(TaskStatus.FAILED, self._clock.now(), exc.code, exc.message)
            return
        except Exception as exc:  # a bug or an ffmpeg failure: the model failed
            task.finish(
                TaskStatus.FAILED,
                self._clock.now(),
                "InternalError.Algo",
                f"The model failed: {type(exc).__name__}: {exc}",
            )
            return
        finally:
            shutil.rmtree(work, ignore_errors=True)
        await self._run_out(began)
        if task.job.parameters.prompt_extend:
            task.actual_prompt = task.job.input.prompt + PROMPT_EXTENSION
        task.video_duration = max(1, round(rendered.duration))
        task.video_ratio = f"{rendered.width}*{rendered.height}"
        task.finish(TaskStatus.SUCCEEDED, self._clock.now())


def _check_and_render(job: Job, files: dict[Role, list[Path]], out: Path) -> Rendered:
    """The service's input checks (`inspect`), then the render; blocking: run in a thread.

    Imported here, in the thread: numpy and the render graph would otherwise slow the
    emulator's start, or block its event loop on the first task.
    """
    from vaceflow.emulator.inspect import InputProblem, check_inputs
    from vaceflow.emulator.render import render

    try:
        checked = check_inputs(job, files)
    except InputProblem as exc:
        raise TaskFailure(exc.code, exc.message) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    return render(job, checked, out)
