"""A job's identity: the one key that says "this job was already paid for".

`job_identity(job, input_hashes)` is the sha256 (hex) of the UTF-8 bytes of this JSON,
serialised with sorted keys, no whitespace and non-ASCII kept as is:

    {"scheme": 1,
     "model": "wan2.1-vace-plus",
     "function": "video_edit",
     "prompt": "<the prompt exactly as sent>",
     "input": {"mask_frame_id": 1},
     "parameters": {"control_condition": "", "expand_mode": "hull", ...},
     "media": {"video": ["<sha256>"], "mask_image": ["<sha256>"]}}

- `input`: the input fields that are neither the prompt, the function nor a URL
  (today only video_edit's `mask_frame_id`), with their defaults.
- `parameters`: every parameter with the model's default filled in, so
  `{"strength": 1.0}` and `{}` are one job; fields left unset whose service default
  is undocumented (`seed`, `prompt_extend`, `watermark`) are left out, so `{}` and
  `{"watermark": false}` are two jobs. `duration` is always 5 and a lone reference
  image is always `["obj"]` (the provider reference says so).
- `media`: the sha256 of each conformed input file by role, in request order (a list
  per role: the order of reference images matters). URLs are NOT in it: they change
  with every staging and carry signatures.

`model` stays as given: the Singapore and Beijing names are different accounts, so
different submissions. `scheme` changes only if this recipe ever does.

`sha256_file` is the one content hash: of conformed inputs here, of staged objects'
names (`vaceflow.storage`), of conform cache keys and of joined videos.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vaceflow.jobs import Function, Job
from vaceflow.limits import OUTPUT, Role

__all__ = ["IDENTITY_SCHEME", "canonical_job", "job_identity", "sha256_file"]

IDENTITY_SCHEME = 1

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HASH_CHUNK = 1024 * 1024
_NOT_OPTIONS = frozenset({"function", "prompt"} | {role.api_field for role in Role})


def canonical_job(job: Job, input_hashes: Mapping[Role, Sequence[str]]) -> dict[str, Any]:
    """The document whose hash is the identity; raises ValueError when the hashes do not
    match the job's inputs role for role and count for count."""
    media = job.input.media()
    given = {Role(role): [_sha256(h) for h in hashes] for role, hashes in input_hashes.items()}
    if {r: len(v) for r, v in media.items()} != {r: len(v) for r, v in given.items()}:
        want = {r.value: len(v) for r, v in media.items()}
        got = {r.value: len(v) for r, v in given.items()}
        raise ValueError(f"input hashes {got} do not match the job's inputs {want} (per role)")
    options = job.input.model_dump(mode="json", exclude_none=True)
    parameters = job.parameters.model_dump(mode="json", exclude_none=True)
    if "duration" in type(job.parameters).model_fields:
        parameters["duration"] = int(OUTPUT.fixed_seconds)
    if job.function is Function.IMAGE_REFERENCE and len(media[Role.REF_IMAGE]) == 1:
        parameters.setdefault("obj_or_bg", ["obj"])
    return {
        "scheme": IDENTITY_SCHEME,
        "model": job.model,
        "function": job.function.value,
        "prompt": job.input.prompt,
        "input": {k: v for k, v in options.items() if k not in _NOT_OPTIONS},
        "parameters": parameters,
        "media": {role.value: given[role] for role in media},
    }


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ValueError(f"{value!r} is not a sha256 hex digest")
    return value.lower()


def job_identity(job: Job, input_hashes: Mapping[Role, Sequence[str]]) -> str:
    """sha256 hex of the canonical job (see the module docstring for what is in it)."""
    doc = canonical_job(job, input_hashes)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
