"""The catalog: the job ledger that makes "submit exactly once" true.

`Catalog(url).upgrade()` opens (and migrates) one; `Catalog.from_settings()` opens the
configured one (VACEFLOW_CATALOG_URL, else SQLite in the data folder). The protocol is
in `vaceflow.catalog.ledger`; the tables in `vaceflow.catalog.schema`.
"""

from vaceflow.catalog.ledger import Catalog, default_catalog_url, new_job_id
from vaceflow.catalog.records import InputRecord, JobEvent, JobRecord, OutputRecord
from vaceflow.catalog.schema import FINAL_STATUSES, JobStatus
from vaceflow.errors import CatalogConflict, JobNotFound

__all__ = [
    "FINAL_STATUSES",
    "Catalog",
    "CatalogConflict",
    "InputRecord",
    "JobEvent",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "OutputRecord",
    "default_catalog_url",
    "new_job_id",
]
