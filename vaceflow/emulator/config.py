"""How an emulator behaves: key, timing, account limits, faults, region, storage.

Defaults are the real account's (`limits.ACCOUNT`), so a client tested against the
defaults meets the same throttling and concurrency it will meet in production.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from vaceflow.limits import ACCOUNT
from vaceflow.regions import Region

__all__ = ["EmulatorConfig", "FaultKind", "SubmitFault"]


class FaultKind(StrEnum):
    """The failures a client must survive; each can be switched on alone."""

    ERROR_500 = "error_500"
    """An API call answers 500 InternalError before any effect."""
    ERROR_503 = "error_503"
    """An API call answers 503 before any effect."""
    DROP = "drop"
    """The response head is sent, then the connection closes before the body."""
    SLOW = "slow"
    """The answer comes `slow_seconds` late."""
    TASK_FAILURE = "task_failure"
    """An accepted task ends FAILED with InternalError.Algo."""


class SubmitFault(StrEnum):
    """What happens to one chosen submit: armed for the next submits, in order
    (`EmulatorConfig.submit_faults`, or `POST /_emulator/faults` while running)."""

    ANSWER_LOST = "answer_lost"
    """The service makes the task, then the connection closes before the answer."""
    LOST = "lost"
    """The connection closes before the service has the request: no task is made."""
    HANG = "hang"
    """The service makes the task and answers only after `hang_seconds` (long enough
    to kill the client while its request is on the wire)."""


class EmulatorConfig(BaseModel):
    """Everything an emulator instance needs; 0 for a rate means unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    latency: float = Field(default=3.0, ge=0, description="Seconds a task stays RUNNING.")
    concurrency: int = Field(default=ACCOUNT.concurrent_tasks, ge=1)
    submit_qps: float = Field(default=ACCOUNT.submit_per_second, ge=0)
    query_qps: float = Field(default=ACCOUNT.query_per_second, ge=0)
    list_qps: float = Field(default=ACCOUNT.list_per_second, ge=0)
    cancel_qps: float = Field(default=ACCOUNT.cancel_per_second, ge=0)
    url_ttl: float = Field(
        default=ACCOUNT.task_ttl_seconds, gt=0, description="Lifetime of task ids and video URLs."
    )
    upload_ttl: float = Field(default=ACCOUNT.upload_ttl_seconds, gt=0)
    fault_rate: float = Field(default=0.0, ge=0, le=1, description="Share of calls/tasks hit.")
    faults: frozenset[FaultKind] = frozenset(FaultKind)
    drop_creates_task: float = Field(
        default=0.5, ge=0, le=1, description="Share of dropped submits that still made a task."
    )
    slow_seconds: float = Field(default=2.0, ge=0)
    submit_faults: tuple[SubmitFault, ...] = Field(
        default=(), description="Faults for the next submits, one each, in order."
    )
    hang_seconds: float = Field(default=60.0, ge=0)
    seed: int | None = None
    blocked_words: tuple[str, ...] = ("forbidden-word",)
    region: Region = Region.SINGAPORE
    data_dir: Path | None = Field(default=None, description="Default: a fresh temporary folder.")
    public_url: str | None = Field(
        default=None, description="Root URL others reach the emulator at (no /api/v1)."
    )
    fetch_timeout: float = Field(default=30.0, gt=0)
    fetch_slack_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Read this much past a role's size limit."
    )

    @property
    def model(self) -> str:
        """The model name this emulator serves (the region's)."""
        return self.region.model
