"""vaceflow's errors, and the one table that says which service errors are worth retrying.

    VaceflowError
    ├── ConfigError                the settings cannot work (no key, bad region, ...)
    ├── JobInvalid                 a job body breaks the contract (before any spend)
    ├── BudgetExceeded             the estimated cost is over the budget given (no spend)
    ├── MediaError                 an input cannot be read or conformed
    │   └── InputRefused           an input breaks a rule it cannot be conformed to
    │       └── InputNotAllowed    the trust policy forbids reading it (vaceflow.trust)
    ├── StorageError               staging or publishing on S3 / temporary storage failed
    ├── StackError                 the local dev stack (SeaweedFS, emulator) would not start
    ├── DashScopeError             the HTTP call failed: status, code, message, request_id
    │   └── DashScopeTransportError  no HTTP answer at all (refused, reset, timed out)
    ├── TaskFailed                 the service ran the task and it ended FAILED/CANCELED/UNKNOWN
    ├── WaitTimeout                the task did not end before our deadline (task_id kept)
    ├── WaitCancelled              we stopped waiting on request (the task cancelled if PENDING)
    ├── JobUncertain               a submit may have reached the service and no task id was
    │                              recorded; the task list cannot say which: a person settles it
    ├── JobNotFound                no job with that id in the catalog
    ├── CatalogConflict            a catalog write the job's row forbids (another task id, a
    │                              state past it)
    └── DownloadFailed             the result could not be fetched intact (nothing left behind)
        └── ResultExpired          the result link expired (403, or its Expires has passed)

"The call failed" (DashScopeError) and "the job failed" (TaskFailed) are different
things: the first says nothing about whether the task exists. Nor is "we stopped
waiting" (WaitTimeout, WaitCancelled) a failed task: the task may still run, and both
carry its id and the last status seen, so no `except` clause depends on another's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

    from vaceflow.catalog.records import JobRecord
    from vaceflow.reconcile import Reconciliation
    from vaceflow.responses import TaskResponse, TaskStatus

__all__ = [
    "FINAL_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_STATUSES",
    "BudgetExceeded",
    "CatalogConflict",
    "ConfigError",
    "DashScopeError",
    "DashScopeTransportError",
    "DownloadFailed",
    "InputNotAllowed",
    "InputRefused",
    "JobInvalid",
    "JobNotFound",
    "JobUncertain",
    "MediaError",
    "ResultExpired",
    "StackError",
    "StorageError",
    "TaskFailed",
    "VaceflowError",
    "WaitCancelled",
    "WaitTimeout",
    "describe_validation_error",
    "is_retryable",
]

# The contract's error table. A code decides when present; else the HTTP status does.
RETRYABLE_CODES: frozenset[str] = frozenset(
    {
        "RequestTimeOut",
        "Throttling",
        "Throttling.RateQuota",
        "Throttling.AllocationQuota",
        "InternalError",
        "InternalError.Algo",
        "ServiceUnavailable",
    }
)
FINAL_CODES: frozenset[str] = frozenset(
    {
        "InvalidParameter",
        "InvalidParameter.DataInspection",
        "DataInspectionFailed",
        "BadRequest.EmptyInput",
        "BadRequest.EmptyParameters",
        "BadRequest.EmptyModel",
        "BadRequest.TooLarge",
        "InvalidURL",
        "Arrearage",
        "UnsupportedOperation",
        "InvalidApiKey",
        "AccessDenied",
        "AccessDenied.Unpurchased",
    }
)
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(status: int | None, code: str | None) -> bool:
    """True when the same request may succeed later (the contract's `retry?` column)."""
    if code in RETRYABLE_CODES:
        return True
    if code in FINAL_CODES:
        return False
    return status in RETRYABLE_STATUSES


class VaceflowError(Exception):
    """Base of every error vaceflow raises."""


class ConfigError(VaceflowError):
    """Settings that cannot work; raised before any network call."""


class JobInvalid(VaceflowError):
    """A job body that the service would refuse or silently change."""


class BudgetExceeded(VaceflowError):
    """The estimate says the run would cost more than the budget; nothing was submitted.

    Both figures are in `currency` (the region's), as the message says."""

    def __init__(self, *, estimated: float, budget: float, currency: str, what: str) -> None:
        self.estimated = estimated
        self.budget = budget
        self.currency = currency
        super().__init__(
            f"estimated {currency} {estimated:.2f} ({what}) exceeds the budget of "
            f"{currency} {budget:.2f}; nothing was submitted"
        )


class MediaError(VaceflowError):
    """An input that cannot be fetched, read or conformed."""

    def __init__(self, message: str, *, input_name: str | None = None) -> None:
        super().__init__(message)
        self.input_name = input_name


class InputRefused(MediaError):
    """An input that breaks a contract rule and cannot be conformed to it."""

    def __init__(self, message: str, *, input_name: str | None = None, rule: str) -> None:
        super().__init__(message, input_name=input_name)
        self.rule = rule


class InputNotAllowed(InputRefused):
    """An input the trust policy does not let this run read: nothing was fetched.

    `allow` says how the owner would allow it (the one setting to change)."""

    def __init__(self, message: str, *, input_name: str | None, rule: str, allow: str) -> None:
        super().__init__(f"{message}; to allow it, {allow}", input_name=input_name, rule=rule)
        self.allow = allow


class StorageError(VaceflowError):
    """A store refused or could not be reached: wrong credentials, no bucket, endpoint down.

    `code` is the store's own error code (`InvalidAccessKeyId`, `NoSuchBucket`, ...)
    when it answered; `retryable` says whether trying again later may help;
    `unreachable` that nothing answered at the endpoint.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.status = status
        self.code = code
        self.retryable = retryable


class StackError(VaceflowError):
    """A local dev-stack process would not start or answer; the message has its log tail."""


class DashScopeError(VaceflowError):
    """An HTTP call to DashScope that did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return is_retryable(self.status, self.code)

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p)
        tail = f" (request_id {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{tail}" if head else f"{self.message}{tail}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class DashScopeTransportError(DashScopeError):
    """No HTTP answer. `sent` says whether the request may have reached the service:
    a refused connection certainly did not, a timeout or reset might have."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent

    @property
    def retryable(self) -> bool:
        return True


class TaskFailed(VaceflowError):
    """The task ended without a video; carries the final task response."""

    def __init__(self, task: TaskResponse) -> None:
        out = task.output
        self.task = task
        self.task_id = out.task_id
        self.status = out.task_status
        self.code = out.code
        self.message = out.message or ""
        detail = f"{out.code}: {out.message}" if out.code else out.task_status.value
        super().__init__(f"task {out.task_id} ended {out.task_status.value}: {detail}")

    @property
    def retryable(self) -> bool:
        """Whether submitting the same job again may succeed (InternalError.Algo may)."""
        return is_retryable(None, self.code)


class WaitTimeout(VaceflowError):
    """Our deadline passed while the task was still waiting; resume with `task_id`.

    `status` is the last one seen (None: no answer came before the deadline)."""

    def __init__(self, task_id: str, status: TaskStatus | None, *, waited: float) -> None:
        self.task_id = task_id
        self.status = status
        self.waited = waited
        seen = status.value if status is not None else "unseen"
        super().__init__(
            f"task {task_id} still {seen} after {waited:.0f} s; it is kept and can be resumed"
        )


class WaitCancelled(VaceflowError):
    """The wait was asked to stop. `task_canceled` says whether the service cancelled the
    task (only a PENDING task can be); if not, it runs on and may still be billed.
    `status` is the last one seen (None: never answered)."""

    def __init__(self, task_id: str, status: TaskStatus | None, *, task_canceled: bool) -> None:
        self.task_id = task_id
        self.status = status
        self.task_canceled = task_canceled
        seen = status.value if status is not None else "unseen"
        outcome = "cancelled" if task_canceled else f"not cancelled (it is {seen})"
        super().__init__(f"stopped waiting for task {task_id}: the task was {outcome}")


class JobUncertain(VaceflowError):
    """A submit may have reached the service, its task id was never recorded, and the
    provider's task list could not settle which task is the job's."""

    def __init__(self, record: JobRecord, found: Reconciliation | None = None) -> None:
        self.record = record
        self.reconciliation = found
        why = (
            found.summary
            if found is not None
            else "automatic reconciling is off (VACEFLOW_RECONCILE=off)"
        )
        super().__init__(
            f"job {record.id}: its submit may have reached the service and no task id was "
            f"recorded; {why}. vaceflow will not pay twice on a guess: settle it with "
            f"`vaceflow catalog resolve {record.id} --task-id ID` (the task is the job's) or "
            f"`vaceflow catalog resolve {record.id} --resubmit` (pay again)"
        )


class JobNotFound(VaceflowError):
    """No job with that id in the catalog."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} in the catalog")
        self.job_id = job_id


class CatalogConflict(VaceflowError):
    """A write that contradicts the row (another task id, a state that forbids it)."""


class DownloadFailed(VaceflowError):
    """A result could not be downloaded intact; no partial file is left behind.

    `url` is redacted (no query string: presigned links are credentials)."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ResultExpired(DownloadFailed):
    """The result link has expired (links live 24 h): the video cannot be fetched any more
    through it; a task younger than 24 h can be queried again for a fresh link."""


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field by its body path (input.video_url)."""
    from vaceflow.jobs import Function  # here: the error tree imports nothing at run time

    tags = frozenset(f.value for f in Function)
    lines = []
    for item in error.errors():
        loc: list[Any] = list(item.get("loc", ()))
        # Drop the union tag pydantic puts first (e.g. "video_edit") and validator names.
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in tags))]
        where = ".".join(str(p) for p in loc)
        msg = str(item.get("msg", "")).removeprefix("Value error, ")
        if msg == "Field required":
            msg = "required"
        elif msg.startswith("Input should"):  # pydantic's "Input" is the value, not media
            msg = msg.replace("Input should", "should", 1)
        lines.append(f"{where}: {msg}" if where else msg)
    return "; ".join(lines)
