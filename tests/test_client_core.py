"""The client's sans-I/O core: the exact actions it asks for, without a clock or a socket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from vaceflow.client._core import ClientCore, Send, Sleep, list_time
from vaceflow.errors import DashScopeError, DashScopeTransportError
from vaceflow.redact import redact_url
from vaceflow.retry import RetryPolicy

THROTTLED = {"code": "Throttling.RateQuota", "message": "slow down", "request_id": "r"}
BODY = {"input": {"function": "video_outpainting", "prompt": "p", "video_url": "http://h/v.mp4"}}


def _core(**retry: float) -> ClientCore:
    return ClientCore("sk-core", base_url="http://127.0.0.1:9/api/v1", retry=RetryPolicy(**retry))  # type: ignore[arg-type]


def _answer(send: object, status: int, retry_after: str | None = None) -> httpx.Response:
    assert isinstance(send, Send)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=THROTTLED, headers=headers, request=send.request)


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0", 0.0), ("600", 20.0)])
def test_submit_sleeps_what_retry_after_says_capped(header: str, expected: float) -> None:
    steps = _core(cap=20.0).submit(BODY)
    first = next(steps)
    assert isinstance(first, Send)
    assert first.attempt == 1
    assert steps.send(_answer(first, 429, header)) == Sleep(expected)
    second = steps.send(None)
    assert isinstance(second, Send)
    assert second.attempt == 2
    assert second.request is first.request


def test_retry_after_as_an_http_date() -> None:
    steps = _core(cap=120.0).get("t-1")
    first = next(steps)
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    sleep = steps.send(_answer(first, 503, when))
    assert isinstance(sleep, Sleep)
    assert 55 <= sleep.seconds <= 60


def test_without_retry_after_the_backoff_applies() -> None:
    steps = _core(base=1.0, cap=1.0, jitter=False).get("t-1")  # type: ignore[arg-type]
    assert steps.send(_answer(next(steps), 503)) == Sleep(1.0)


def test_a_5xx_on_submit_raises_without_asking_to_sleep() -> None:
    steps = _core().submit(BODY)
    first = next(steps)
    with pytest.raises(DashScopeError) as caught:
        steps.send(_answer(first, 500))
    assert caught.value.status == 500
    assert caught.value.retry_after is None


def test_a_sent_transport_error_on_submit_raises_at_once() -> None:
    steps = _core().submit(BODY)
    next(steps)
    with pytest.raises(DashScopeTransportError):
        steps.send(DashScopeTransportError("reset", sent=True))


def test_redact_url_drops_query_and_credentials() -> None:
    url = "https://user:pw@bucket.oss.example:8443/out/v.mp4?Expires=1&Signature=abc"
    assert redact_url(url) == "https://bucket.oss.example:8443/out/v.mp4"


def test_list_times_are_sent_in_service_time() -> None:
    """The service's clock is China Standard Time; an aware datetime is converted to it."""
    assert list_time(datetime(2025, 1, 1, 0, 0, tzinfo=UTC)) == "20250101080000"
    assert list_time(datetime(2025, 1, 1, 8, 0)) == "20250101080000"
    assert list_time("20250101080000") == "20250101080000"
    with pytest.raises(ValueError, match="YYYYMMDDhhmmss"):
        list_time("2025-01-01")
