"""Putting inputs where the service can fetch them, and outputs where users find them.

staged.py          StagedInput and the Stager interface both stores implement
s3.py              any S3-compatible bucket: content-addressed uploads, presigned URLs
dashscope_temp.py  no bucket: the provider's 48 h temporary storage (oss:// URLs)
choose.py          which of the two the settings ask for
outputs.py         publishing a finished job, clearing its inputs
guard.py           refusing URLs the service could never fetch, before any spend
"""

from __future__ import annotations

from vaceflow.storage.choose import open_output_store, open_stager, staging_mode
from vaceflow.storage.dashscope_temp import DashScopeTempStager, account_scope
from vaceflow.storage.guard import check_fetchable, is_local_host
from vaceflow.storage.outputs import PublishedOutputs, discard_inputs, publish_outputs
from vaceflow.storage.s3 import S3Store, input_url_ttl, make_s3_client
from vaceflow.storage.staged import (
    OSS_RESOLVE_HEADER,
    StagedInput,
    Stager,
    needs_oss_resolve,
)

__all__ = [
    "OSS_RESOLVE_HEADER",
    "DashScopeTempStager",
    "PublishedOutputs",
    "S3Store",
    "StagedInput",
    "Stager",
    "account_scope",
    "check_fetchable",
    "discard_inputs",
    "input_url_ttl",
    "is_local_host",
    "make_s3_client",
    "needs_oss_resolve",
    "open_output_store",
    "open_stager",
    "publish_outputs",
    "staging_mode",
]
