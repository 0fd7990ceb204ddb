"""After a verified download: outputs to the store, a link for the user, inputs cleared.

`{prefix}/outputs/{job_id}/video.mp4`, `thumbnail.png` and `job.json`. Written under
fixed keys, so a retried publish overwrites instead of duplicating.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vaceflow.redact import redact_url
from vaceflow.storage.s3 import PRESIGN_MAX_SECONDS, S3Store
from vaceflow.storage.staged import StagedInput, Stager

__all__ = ["PublishedOutputs", "discard_inputs", "publish_outputs"]

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class PublishedOutputs:
    video_key: str
    thumbnail_key: str | None
    record_key: str
    link: str
    """A URL for the user to open the video (presigned unless the bucket is public)."""
    link_expires_at: datetime | None

    def __repr__(self) -> str:
        return f"PublishedOutputs(video_key={self.video_key!r}, link={redact_url(self.link)!r})"


def publish_outputs(
    store: S3Store,
    job_id: str,
    *,
    video: Path,
    record: Mapping[str, Any],
    thumbnail: Path | None = None,
    link_ttl: int = PRESIGN_MAX_SECONDS,
) -> PublishedOutputs:
    """Upload a finished job's files; `record` becomes `job.json` (JSON-serialisable)."""
    if not _JOB_ID.match(job_id):
        raise ValueError(f"job id {job_id!r} cannot name an S3 folder")
    video_key = store.output_key(job_id, "video.mp4")
    store.upload_file(video, video_key, content_type="video/mp4")
    thumb_key = None
    if thumbnail is not None:
        thumb_key = store.output_key(job_id, "thumbnail.png")
        store.upload_file(thumbnail, thumb_key, content_type="image/png")
    record_key = store.output_key(job_id, "job.json")
    body = json.dumps(record, indent=2, default=str).encode()
    store.put_bytes(record_key, body, content_type="application/json")
    link, expires_at = store.url_for(video_key, link_ttl)
    return PublishedOutputs(video_key, thumb_key, record_key, link, expires_at)


def discard_inputs(stager: Stager, staged: Iterable[StagedInput], *, keep: bool) -> int:
    """Delete a successful job's staged inputs unless VACEFLOW_KEEP_INPUTS (`keep`).

    Inputs are shared by content: call this only once the job succeeded, and prefer
    the lifecycle rule when other jobs may still wait on the same bytes.
    """
    items = list(staged)
    if keep or not items:
        return 0
    stager.discard(items)
    return len(items)
