"""Does a service answer? One short HTTP request, timed: what `vaceflow doctor` reports
and what a run checks before it starts.

Any HTTP answer counts as an answer (a base URL's 404 is one); no answer is said in
words a person reads (connection refused, no answer within 3 s, unknown host), never
as an exception's class name.
"""

from __future__ import annotations

import errno
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_TIMEOUT", "Answer", "reach", "why_no_answer"]

DEFAULT_TIMEOUT = 3.0
"""Seconds: a service on loopback answers in milliseconds, a remote one well within this."""


@dataclass(frozen=True)
class Answer:
    url: str
    seconds: float
    status: int | None = None
    """The HTTP status; None when nothing answered."""
    problem: str | None = None
    """Why nothing answered, in words."""
    body: bytes = b""

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def took(self) -> str:
        """`12 ms`, `1.4 s`."""
        return f"{self.seconds * 1000:.0f} ms" if self.seconds < 1 else f"{self.seconds:.1f} s"


def reach(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
) -> Answer:
    """GET `url` once, without retries or redirects; how long it took and what came back."""
    started = time.monotonic()
    try:
        response = httpx.get(
            url, timeout=timeout, headers=dict(headers or {}), params=dict(params or {})
        )
    except (httpx.HTTPError, OSError) as exc:
        return Answer(url, time.monotonic() - started, problem=why_no_answer(exc, timeout))
    return Answer(url, time.monotonic() - started, response.status_code, body=response.content)


def why_no_answer(exc: BaseException, timeout: float | None = None) -> str:
    """A failed connection in words: what a person checks next."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return f"no answer within {timeout:g} s" if timeout else "no answer in time"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == (
            errno.ECONNREFUSED
        ):
            return "connection refused"
        text = str(cause).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "unknown host"
        if "temporary failure in name resolution" in text:
            return "the host name could not be resolved"
        if "unreachable" in text:
            return "network unreachable"
        if "reset" in text:
            return "the connection was reset"
        cause = cause.__cause__ or cause.__context__
    return "no connection"
