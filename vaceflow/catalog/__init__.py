"""The catalog: the job ledger that makes "submit exactly once" true, and its reports.

`Catalog(url).upgrade()` opens (and migrates) one; `Catalog.from_settings()` opens the
configured one (VACEFLOW_CATALOG_URL, else SQLite in the data folder).

    ledger.py    the submit protocol (who may write what, when) and the reads it needs
    reports.py   lists, money spent per currency, how long tasks take (read-only)
    export.py    the catalog as JSON or CSV files
    records.py   what a read returns (JobRecord, its inputs, output and history)
    schema.py    the tables; database.py opens and migrates them
    (`vaceflow.redact` takes the signatures off URLs before anything is stored)
"""

from vaceflow.catalog.database import default_catalog_url
from vaceflow.catalog.ledger import Ledger, new_job_id
from vaceflow.catalog.records import InputRecord, JobEvent, JobRecord, OutputRecord
from vaceflow.catalog.reports import Reports
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


class Catalog(Ledger, Reports):
    """One database: the ledger's protocol and reads, and the reports over them."""
