"""Staging without a bucket: the provider's temporary storage, as the official SDK does it.

A policy from `GET {base}/uploads?action=getPolicy&model=...`, then a form POST to its
`upload_host` under `upload_dir/<sha256><ext>`; the job refers to the file as
`oss://upload_dir/<sha256><ext>` and its submit needs `X-DashScope-OssResourceResolve:
enable`. Files live 48 h (`ACCOUNT.upload_ttl_seconds`); each upload is recorded by
content hash in the data folder, so a resumed job reuses a file that will outlive its
wait and uploads again one that will not. The file host never sees the API key.

Retries: the policy is a DashScope read (the client's own retries); the form POST is
tried again here (`UPLOAD_RETRY`) after no answer, a 5xx or a 429, and by nothing above
(the stage task does not retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from vaceflow.client.uploads import UploadPolicy
from vaceflow.errors import RETRYABLE_STATUSES, StorageError
from vaceflow.identity import sha256_file
from vaceflow.limits import ACCOUNT
from vaceflow.redact import redact_url
from vaceflow.retry import RetryPolicy
from vaceflow.storage.staged import StagedInput, content_name, content_type

__all__ = ["UPLOAD_RETRY", "DashScopeTempStager", "account_scope"]

log = logging.getLogger(__name__)

_POLICY_MARGIN_SECONDS = 60.0
UPLOAD_RETRY = RetryPolicy(attempts=3, base=1.0, cap=10.0)
"""Tries of one form POST, the first included."""


def account_scope(base_url: str, api_key: SecretStr) -> str:
    """Names an account at an endpoint without revealing its key (a truncated hash)."""
    fingerprint = hashlib.sha256(api_key.get_secret_value().encode()).hexdigest()[:16]
    return f"{base_url}#{fingerprint}"


class DashScopeTempStager:
    """A `Stager` over the provider's temporary storage (VACEFLOW_STAGING=dashscope)."""

    def __init__(
        self,
        policy_source: Callable[[], UploadPolicy],
        *,
        records: Path,
        scope: str,
        min_remaining: float,
        http: httpx.Client | None = None,
        lifetime: float = ACCOUNT.upload_ttl_seconds,
        on_close: Callable[[], None] | None = None,
        retry: RetryPolicy = UPLOAD_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`policy_source` is typically `Client.get_upload_policy`; `scope` names the
        account and region (uploads are not shared across them); a recorded upload is
        reused only while it has `min_remaining` seconds left. `http` posts the files
        and must carry no DashScope credentials."""
        self._policy_source = policy_source
        self._records = records
        self._scope = scope
        self._min_remaining = min_remaining
        self._lifetime = lifetime
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=httpx.Timeout(30.0, read=600.0))
        self._on_close = on_close
        self._retry = retry
        self._sleep = sleep
        self._policy: UploadPolicy | None = None
        self._policy_until = 0.0

    def __repr__(self) -> str:
        return f"DashScopeTempStager(records={str(self._records)!r})"

    def stage(self, path: Path) -> StagedInput:
        path = Path(path)
        sha = sha256_file(path)
        size = path.stat().st_size
        ctype = content_type(path)
        name = content_name(sha, path)
        now = datetime.now(UTC)
        known = self._load().get(self._record_key(sha))
        if known is not None:
            staged = StagedInput.model_validate(known)
            if staged.valid_for(self._min_remaining, now=now):
                log.info("input %s already in temporary storage as %s", path.name, staged.redacted)
                return staged
        policy = self._current_policy()
        url = self._upload(policy, path, name, ctype)
        staged = StagedInput(
            url=url,
            key=policy.key(name),
            sha256=sha,
            size=size,
            content_type=ctype,
            expires_at=now + timedelta(seconds=self._lifetime),
            needs_oss_resolve=True,
        )
        self._record(sha, staged)
        log.info("uploaded %s to temporary storage as %s", path.name, staged.redacted)
        return staged

    def discard(self, staged: Iterable[StagedInput]) -> None:
        """Nothing to do: the provider deletes temporary files itself after 48 h."""

    def close(self) -> None:
        if self._own_http:
            self._http.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> DashScopeTempStager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current_policy(self) -> UploadPolicy:
        if self._policy is None or time.monotonic() >= self._policy_until:
            self._policy = self._policy_source()
            life = float(self._policy.expire_in_seconds or 300)
            self._policy_until = time.monotonic() + max(life - _POLICY_MARGIN_SECONDS, 1.0)
        return self._policy

    def _upload(self, policy: UploadPolicy, path: Path, name: str, ctype: str) -> str:
        """POST the file, again after no answer, a 5xx or a 429. The name is the content's
        hash, so a file already under it (409 FileAlreadyExists: an earlier try whose
        answer was lost, or another run's) holds these very bytes: it counts as uploaded."""
        fields = policy.form_fields(name, ctype)
        host = policy.upload_host
        key = policy.key(name)
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            try:
                with path.open("rb") as f:
                    answer = self._http.post(host, data=fields, files={"file": (name, f, ctype)})
            except httpx.TransportError as exc:
                problem = f"cannot reach the temporary storage at {redact_url(host)}: {exc}"
            else:
                status = answer.status_code
                if status in (200, 204) or (status == 409 and "FileAlreadyExists" in answer.text):
                    return policy.oss_url(name)
                problem = f"temporary storage refused {name} ({status}): {answer.text[:300]}"
                if status not in RETRYABLE_STATUSES:
                    raise StorageError(problem, operation="PostObject", key=key, status=status)
            if attempt >= self._retry.attempts:
                raise StorageError(
                    f"{problem} ({attempt} attempts)",
                    operation="PostObject",
                    key=key,
                    status=status,
                    retryable=True,
                )
            delay = self._retry.delay(attempt)
            log.warning("%s; trying again in %.1f s", problem, delay)
            self._sleep(delay)

    # --- the record of uploads, by content hash ---------------------------------------
    def _record_key(self, sha: str) -> str:
        return f"{self._scope}|{sha}"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._records.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _record(self, sha: str, staged: StagedInput) -> None:
        """Write atomically, dropping records that expired (a lost race costs an upload)."""
        now = datetime.now(UTC)
        data = {
            k: v
            for k, v in self._load().items()
            if isinstance(v, dict)
            and v.get("expires_at")
            and datetime.fromisoformat(str(v["expires_at"])) > now
        }
        data[self._record_key(sha)] = staged.model_dump(mode="json")
        self._records.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._records.with_name(f"{self._records.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self._records)
