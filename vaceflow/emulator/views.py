"""The JSON the service answers for a task and for a page of the task list."""

from __future__ import annotations

from typing import Any

from vaceflow.emulator.signing import Signer
from vaceflow.emulator.tasks import Task, key_id
from vaceflow.emulator.wire import format_service_time
from vaceflow.regions import Region
from vaceflow.responses import TaskStatus

__all__ = ["result_route", "task_body", "task_list_item", "unknown_task_body"]

_REGION_IDS = {Region.SINGAPORE: "ap-southeast-1", Region.BEIJING: "cn-beijing"}


def result_route(task_id: str) -> str:
    return f"/_emulator/results/{task_id}.mp4"


def unknown_task_body(task_id: str, request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "output": {"task_id": task_id, "task_status": TaskStatus.UNKNOWN.value},
    }


def task_body(
    task: Task, request_id: str, *, root: str, signer: Signer, url_ttl: float
) -> dict[str, Any]:
    """`GET /tasks/{id}`: what the service shows at each stage of the task."""
    output: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": task.status.value,
        "submit_time": format_service_time(task.submit_time),
    }
    if task.scheduled_time is not None:
        output["scheduled_time"] = format_service_time(task.scheduled_time)
    if task.end_time is not None:
        output["end_time"] = format_service_time(task.end_time)
    body: dict[str, Any] = {"request_id": request_id, "output": output}
    if task.status is TaskStatus.FAILED:
        output["code"] = task.code
        output["message"] = task.message
    elif task.status is TaskStatus.SUCCEEDED:
        assert task.end_time is not None
        output["orig_prompt"] = task.job.input.prompt
        if task.actual_prompt is not None:
            output["actual_prompt"] = task.actual_prompt
        expires = int(task.end_time + url_ttl)
        output["video_url"] = signer.url(root, result_route(task.task_id), expires)
        body["usage"] = {
            "video_duration": task.video_duration,
            "video_ratio": task.video_ratio,
            "video_count": 1,
        }
    return body


def task_list_item(task: Task, *, api_key: str, region: Region) -> dict[str, Any]:
    """One row of `GET /tasks`: `status`, epoch-millisecond times, account fields."""
    item: dict[str, Any] = {
        "api_key_id": key_id(api_key),
        "caller_parent_id": "emulator-parent",
        "caller_uid": "emulator-uid",
        "gmt_create": _ms(task.submit_time),
        "model_name": task.model,
        "region": _REGION_IDS[region],
        "request_id": task.request_id,
        "status": task.status.value,
        "task_id": task.task_id,
        "user_api_unique_key": f"apikey:v1:video-generation:{task.model}:{key_id(api_key)}",
    }
    if task.scheduled_time is not None:
        item["start_time"] = _ms(task.scheduled_time)
    if task.end_time is not None:
        item["end_time"] = _ms(task.end_time)
    return item


def _ms(epoch: float) -> int:
    return int(epoch * 1000)
