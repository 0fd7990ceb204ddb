"""The provider's temporary storage: an upload policy, a form POST, `oss://` keys.

Matches what the official SDK (`dashscope/utils/oss_utils.py`) does with local files:
`GET /uploads?action=getPolicy&model=M` gives a policy whose `upload_host` is this
emulator's form endpoint; the SDK POSTs the file there under `upload_dir/<name>` and
then submits `oss://upload_dir/<name>` with `X-DashScope-OssResourceResolve: enable`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path, PurePosixPath
from typing import Any

from vaceflow.emulator.clock import Clock
from vaceflow.emulator.wire import new_id

__all__ = ["UploadRejected", "UploadStore", "parse_form"]

_POLICY_SECONDS = 300
_MAX_FILE_MB = 100
_ACCESS_KEY_ID = "LTAI-emulator-upload"


class UploadRejected(Exception):
    """A form upload OSS would refuse, with its HTTP status and OSS error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def xml(self) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
            f"{self.code}</Code><Message>{self.message}</Message>"
            f"<RequestId>{new_id()}</RequestId></Error>"
        )


@dataclass(frozen=True)
class _Stored:
    path: Path
    stored_at: float


class UploadStore:
    """Files uploaded under policies this store signed; each lives `ttl` seconds."""

    def __init__(self, root: Path, *, secret: bytes, clock: Clock, ttl: float) -> None:
        self._root = root
        self._secret = secret
        self._clock = clock
        self._ttl = ttl
        self._files: dict[str, _Stored] = {}
        self._lock = threading.Lock()

    def policy(self, model: str, *, owner: str, host: str) -> dict[str, Any]:
        """The `data` of a getPolicy answer, field for field what the SDK reads;
        `host` is where the form goes (this emulator's `/_emulator/oss`)."""
        day = datetime.fromtimestamp(self._clock.now(), UTC).strftime("%Y-%m-%d")
        upload_dir = f"dashscope-instant/{owner}/{day}/{new_id()}"
        expiration = datetime.fromtimestamp(self._clock.now() + _POLICY_SECONDS, UTC)
        document = {
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [
                ["content-length-range", 0, _MAX_FILE_MB * 1024 * 1024],
                ["starts-with", "$key", upload_dir],
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
                {"model": model},
            ],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        return {
            "policy": policy,
            "signature": self._sign(policy),
            "upload_dir": upload_dir,
            "upload_host": host,
            "expire_in_seconds": _POLICY_SECONDS,
            "max_file_size_mb": _MAX_FILE_MB,
            "capacity_limit_mb": 999_999_999,
            "oss_access_key_id": _ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    def accept(self, fields: dict[str, str], content: bytes) -> str:
        """Store a form upload after OSS's checks; returns its key."""
        if fields.get("OSSAccessKeyId") != _ACCESS_KEY_ID:
            raise UploadRejected(403, "InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
        policy = fields.get("policy", "")
        if not hmac.compare_digest(self._sign(policy), fields.get("Signature", "")):
            raise UploadRejected(
                403, "SignatureDoesNotMatch", "The request signature we calculated does not match."
            )
        document = json.loads(base64.b64decode(policy))
        expires = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.000Z")
        if expires.replace(tzinfo=UTC).timestamp() < self._clock.now():
            raise UploadRejected(
                403, "AccessDenied", "Invalid according to Policy: Policy expired."
            )
        key = fields.get("key", "")
        prefix = next(c[2] for c in document["conditions"] if c[0:2] == ["starts-with", "$key"])
        parts = PurePosixPath(key).parts
        if not key.startswith(prefix + "/") or ".." in parts or key.endswith("/"):
            raise UploadRejected(403, "AccessDenied", "Invalid according to Policy: key.")
        if len(content) > _MAX_FILE_MB * 1024 * 1024:
            raise UploadRejected(400, "EntityTooLarge", "Your proposed upload exceeds the limit.")
        with self._lock:
            if key in self._files and fields.get("x-oss-forbid-overwrite") == "true":
                raise UploadRejected(409, "FileAlreadyExists", "The object you specified exists.")
            path = self._root.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            self._files[key] = _Stored(path, self._clock.now())
        return key

    def resolve(self, url: str) -> Path | None:
        """The stored file behind `oss://key`, or None when absent or expired."""
        key = url.removeprefix("oss://")
        with self._lock:
            stored = self._files.get(key)
        if stored is None or self._clock.now() - stored.stored_at > self._ttl:
            return None
        return stored.path

    def _sign(self, policy: str) -> str:
        mac = hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()
        return base64.b64encode(mac).decode()


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None]:
    """A multipart/form-data body: its text fields and the `file` part's bytes."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    content: bytes | None = None
    if not message.is_multipart():
        return fields, content
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if name == "file":
            content = payload
        else:
            fields[name] = payload.decode()
    return fields, content
