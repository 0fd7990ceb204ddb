"""Downloading a task's inputs as the service does: public http(s) or its own oss://."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from vaceflow.emulator.tasks import TaskFailure
from vaceflow.emulator.uploads import UploadStore
from vaceflow.jobs import Job
from vaceflow.limits import Role

__all__ = ["fetch_inputs"]


async def fetch_inputs(
    job: Job, dest: Path, *, client: httpx.AsyncClient, uploads: UploadStore, slack: int
) -> dict[Role, list[Path]]:
    """Every input of `job` as a local file under `dest`, by role, in request order."""
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[Role, list[Path]] = {}
    for role, urls in job.input.media().items():
        for index, url in enumerate(urls):
            where = f"input.{role.api_field}" + (f"[{index}]" if role is Role.REF_IMAGE else "")
            suffix = PurePosixPath(urlsplit(url).path).suffix.lower()[:8]
            target = dest / f"{role.value}-{index}{suffix}"
            if url.startswith("oss://"):
                await asyncio.to_thread(_copy_upload, url, target, uploads, where)
            else:
                await _download(url, target, client, role.rule.max_bytes, slack, where)
            files.setdefault(role, []).append(target)
    return files


def _copy_upload(url: str, target: Path, uploads: UploadStore, where: str) -> None:
    source = uploads.resolve(url)
    if source is None:
        raise TaskFailure("InvalidURL", f"{where}: {url} does not exist or has expired")
    shutil.copyfile(source, target)


async def _download(
    url: str, target: Path, client: httpx.AsyncClient, limit: int, slack: int, where: str
) -> None:
    """Stream to `target`, giving up `slack` bytes past `limit` (the checks judge the rest)."""
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise TaskFailure(
                    "InvalidURL", f"{where}: downloading {url} answered HTTP {response.status_code}"
                )
            size = 0
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit + slack:
                        raise TaskFailure(
                            "InvalidParameter",
                            f"{where}: the file is larger than {limit // (1024 * 1024)} MB",
                        )
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise TaskFailure(
            "InvalidURL", f"{where}: cannot download {url} ({type(exc).__name__})"
        ) from None
