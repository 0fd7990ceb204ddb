"""The provider's temporary storage: an upload policy and the form that uses it.

`GET {base}/uploads?action=getPolicy&model=...` answers a short-lived OSS POST policy
(the official SDK's `dashscope/utils/oss_utils.py`). A file POSTed as a form to
`upload_host` under `upload_dir/<name>` is then referred to as `oss://upload_dir/<name>`,
and the submit must carry `X-DashScope-OssResourceResolve: enable`.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["OSS_SCHEME", "UploadPolicy"]

OSS_SCHEME = "oss://"


class UploadPolicy(BaseModel):
    """One upload policy. The signature is a credential: it never shows in a repr."""

    model_config = ConfigDict(extra="allow", frozen=True)

    request_id: str | None = None
    upload_host: str
    upload_dir: str
    policy: SecretStr
    signature: SecretStr
    oss_access_key_id: str
    x_oss_object_acl: str = "private"
    x_oss_forbid_overwrite: str = "true"
    expire_in_seconds: int | None = Field(default=None, description="Policy lifetime.")
    max_file_size_mb: float | None = None
    capacity_limit_mb: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, value: Any) -> Any:
        """The service nests the policy under `data` (the SDK also accepts `output`)."""
        if isinstance(value, dict):
            for key in ("data", "output"):
                inner = value.get(key)
                if isinstance(inner, dict):
                    return {"request_id": value.get("request_id"), **inner}
        return value

    @field_validator("x_oss_forbid_overwrite", mode="before")
    @classmethod
    def _form_text(cls, value: Any) -> Any:
        return str(value).lower() if isinstance(value, bool) else value

    def key(self, name: str) -> str:
        """The object key a file named `name` is stored under."""
        return f"{self.upload_dir.rstrip('/')}/{name}"

    def oss_url(self, name: str) -> str:
        """How a request refers to the uploaded file."""
        return OSS_SCHEME + self.key(name)

    def form_fields(self, name: str, content_type: str | None = None) -> dict[str, str]:
        """The form fields to POST to `upload_host` with the file (as field `file`, last)."""
        guessed = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return {
            "OSSAccessKeyId": self.oss_access_key_id,
            "Signature": self.signature.get_secret_value(),
            "policy": self.policy.get_secret_value(),
            "key": self.key(name),
            "x-oss-object-acl": self.x_oss_object_acl,
            "x-oss-forbid-overwrite": self.x_oss_forbid_overwrite,
            "success_action_status": "200",
            "x-oss-content-type": guessed,
        }
