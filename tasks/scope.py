"""`bound`: a context variable set for a block and put back after it, the way the
flow run's runtime (`tasks.runtime`) and trust policy (`tasks.trust`) travel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["bound"]

T = TypeVar("T")


@contextmanager
def bound(var: ContextVar[T | None], value: T) -> Iterator[T]:
    """`var` holds `value` inside the block (and the flows and tasks started there),
    and what it held before after it."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)
