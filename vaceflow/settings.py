"""One settings object, read from the environment (and the dev stack's env file).

Names follow the official SDK where it has one (`DASHSCOPE_API_KEY`,
`DASHSCOPE_HTTP_BASE_URL`, `DASHSCOPE_WORKSPACE_ID`) so users move between the two
freely; everything of vaceflow's own is `VACEFLOW_*`. Secrets are `SecretStr`:
unwrapped only where a client is made, never in a repr, log or parameter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "data_dir", "env_file"]


def data_dir() -> Path:
    """Where vaceflow keeps its state: VACEFLOW_DATA_DIR, else `.vaceflow` in the cwd."""
    return Path(os.environ.get("VACEFLOW_DATA_DIR") or Path.cwd() / ".vaceflow").resolve()


def env_file() -> Path:
    """The file `vaceflow dev up` writes and every command reads by default."""
    return data_dir() / "env"


class Settings(BaseSettings):
    """Everything configurable. The environment wins over the dev stack's env file."""

    model_config = SettingsConfigDict(
        env_prefix="VACEFLOW_", extra="ignore", populate_by_name=True, frozen=True
    )

    # --- DashScope ------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DASHSCOPE_API_KEY", "VACEFLOW_API_KEY")
    )
    http_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DASHSCOPE_HTTP_BASE_URL", "VACEFLOW_HTTP_BASE_URL"),
    )
    workspace_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DASHSCOPE_WORKSPACE_ID", "VACEFLOW_WORKSPACE_ID"),
    )
    region: str = Field(
        default="singapore",
        validation_alias=AliasChoices("DASHSCOPE_REGION", "VACEFLOW_REGION"),
        description="singapore (intl, default) or beijing (cn).",
    )

    # --- S3 staging -----------------------------------------------------------------
    staging: Literal["auto", "s3", "dashscope"] = "auto"
    """auto: S3 when a bucket is configured, else the provider's temporary storage."""
    s3_bucket: str | None = None
    s3_prefix: str = "vaceflow"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    url_ttl: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    """Seconds a presigned input URL lives; default: the wait timeout plus a margin."""
    public_base_url: str | None = None
    keep_inputs: bool = False
    s3_bucket_block: str | None = None
    """Name of a prefect-aws S3Bucket block to use instead of the variables above."""
    s3_create_bucket: bool = False
    """Create a missing bucket instead of refusing (off: a typo should not make buckets)."""
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    """path for MinIO/SeaweedFS on a bare host:port; virtual for Alibaba OSS."""
    s3_access_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("VACEFLOW_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    )
    """Unset: boto3's own chain (profile, instance role). Read here so the dev stack's
    env file reaches boto3 without being sourced into the shell."""
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VACEFLOW_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VACEFLOW_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
    )

    # --- jobs -----------------------------------------------------------------------
    wait_timeout: float = Field(default=30 * 60, gt=0)
    catalog_url: str | None = None
    """Any SQLAlchemy URL; default: SQLite in the data folder."""
    price_per_second: float = Field(default=0.10, ge=0)
    """USD per second of generated video (Singapore, today); prices change."""

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment, falling back to the dev stack's env file."""
        path = env_file()
        return cls(_env_file=path if path.is_file() else None)

    @property
    def data_dir(self) -> Path:
        return data_dir()
