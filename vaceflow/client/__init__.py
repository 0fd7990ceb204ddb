"""The DashScope client for wan2.1-vace-plus: `Client` (blocking) and `AsyncClient`.

Both drive one sans-I/O core (`_core.py`): request building, answer parsing, error
translation and the retry plan are written once; the shells only send and sleep.
"""

from __future__ import annotations

from vaceflow.redact import redact_url
from vaceflow.retry import Call, RetryPolicy

from ._async import AsyncClient
from ._core import ListQuery
from ._sync import Client
from .uploads import UploadPolicy

__all__ = [
    "AsyncClient",
    "Call",
    "Client",
    "ListQuery",
    "RetryPolicy",
    "UploadPolicy",
    "redact_url",
]
