"""The service's wire conventions: error bodies, request ids and its timestamps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi.responses import JSONResponse

from vaceflow.responses import LIST_TIME_FORMAT, SERVICE_TIME_FORMAT, SERVICE_TZ

__all__ = ["ApiError", "format_service_time", "new_id", "parse_list_time"]


def new_id() -> str:
    return str(uuid.uuid4())


def format_service_time(epoch: float) -> str:
    """`2025-05-23 17:07:30.497`: what `submit_time`/`end_time` look like."""
    moment = datetime.fromtimestamp(epoch, UTC).astimezone(SERVICE_TZ)
    return moment.strftime(SERVICE_TIME_FORMAT)[:-3]


def parse_list_time(value: str) -> float:
    """`YYYYMMDDhhmmss` (service time zone) to epoch seconds; ValueError if malformed."""
    if len(value) != 14 or not value.isdigit():
        raise ValueError(value)
    return datetime.strptime(value, LIST_TIME_FORMAT).replace(tzinfo=SERVICE_TZ).timestamp()


class ApiError(Exception):
    """An answer other than 200: `{"code", "message", "request_id"}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self, request_id: str) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "request_id": request_id}
        return JSONResponse(body, status_code=self.status)
