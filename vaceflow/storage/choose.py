"""Which store stages inputs: an S3 bucket when configured, else the provider's own."""

from __future__ import annotations

from vaceflow.client import Client
from vaceflow.errors import ConfigError
from vaceflow.settings import Settings
from vaceflow.storage.dashscope_temp import DashScopeTempStager, account_scope
from vaceflow.storage.s3 import URL_TTL_MARGIN_SECONDS, S3Store
from vaceflow.storage.staged import Stager

__all__ = ["open_output_store", "open_stager", "staging_mode"]


def staging_mode(settings: Settings) -> str:
    """`s3` or `dashscope`: VACEFLOW_STAGING, with `auto` meaning s3 iff a bucket is set."""
    if settings.staging == "auto":
        return "s3" if settings.s3_bucket else "dashscope"
    return settings.staging


def open_stager(settings: Settings) -> Stager:
    """The stager the settings ask for; close it when done."""
    if staging_mode(settings) == "s3":
        return S3Store.from_settings(settings)
    if settings.api_key is None:
        raise ConfigError(
            "no S3 bucket (VACEFLOW_S3_BUCKET) and no DASHSCOPE_API_KEY for the "
            "provider's temporary storage: set one of them"
        )
    client = Client.from_settings(settings)
    return DashScopeTempStager(
        client.get_upload_policy,
        records=settings.data_dir / "dashscope-uploads.json",
        scope=account_scope(client.endpoint.base_url, settings.api_key),
        min_remaining=settings.wait_timeout + URL_TTL_MARGIN_SECONDS,
        on_close=client.close,
    )


def open_output_store(settings: Settings) -> S3Store | None:
    """Where outputs go: the bucket, or None (outputs then stay in the data folder)."""
    return S3Store.from_settings(settings) if settings.s3_bucket else None
