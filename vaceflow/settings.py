"""One settings object, read from the environment (and the dev stack's env file).

Names follow the official SDK where it has one (`DASHSCOPE_API_KEY`,
`DASHSCOPE_HTTP_BASE_URL`, `DASHSCOPE_WORKSPACE_ID`) so users move between the two
freely; everything of vaceflow's own is `VACEFLOW_*`. Secrets are `SecretStr`:
unwrapped only where a client is made, never in a repr, log or parameter.

Prices live here and nowhere else (the contract: "keep them in settings, not in
code"): `DEFAULT_PRICES` per region and currency, overridden per region by
VACEFLOW_PRICES and for the active region by VACEFLOW_PRICE_PER_SECOND; read them
through `Settings.pricing`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vaceflow.limits import ACCOUNT, AccountLimits
from vaceflow.options import WAIT_TIMEOUT_MINUTES
from vaceflow.regions import Region, parse_region
from vaceflow.trust import MAX_JOB_FILE_BODIES, MAX_JOB_FILE_BYTES

__all__ = ["DEFAULT_PRICES", "Price", "Pricing", "Settings", "data_dir", "env_file"]


def data_dir() -> Path:
    """Where vaceflow keeps its state: VACEFLOW_DATA_DIR, else `.vaceflow` in the cwd."""
    return Path(os.environ.get("VACEFLOW_DATA_DIR") or Path.cwd() / ".vaceflow").resolve()


def env_file() -> Path:
    """The file `vaceflow dev up` writes and every command reads by default."""
    return data_dir() / "env"


# --- prices ---------------------------------------------------------------------------


class Price(BaseModel):
    """What one second of generated video costs. Reads "0.65 CNY" as well as a mapping,
    so an environment variable can say it in one word."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            amount, _, currency = value.strip().partition(" ")
            return {"amount": amount, "currency": currency.strip().upper()}
        return value

    def of(self, seconds: float) -> float:
        return seconds * self.amount

    def money(self, amount: float) -> str:
        """`USD 1.50`: every figure vaceflow prints names its currency."""
        return f"{self.currency} {amount:.2f}"

    def __str__(self) -> str:
        cents = f"{self.amount:.2f}"
        return f"{self.currency} {cents if float(cents) == self.amount else self.amount}/s"


DEFAULT_PRICES: Mapping[Region, Price] = {
    Region.SINGAPORE: Price(amount=0.10, currency="USD"),
    Region.BEIJING: Price(amount=0.70, currency="CNY"),
}
"""The contract's figures (720p, per second of successful output). Prices change:
override them (`Settings.prices`, `Settings.price_per_second`), do not edit code."""


@dataclass(frozen=True)
class Pricing:
    """The price table in force: one price per region, and which region is ours.

    Each region bills in its own currency, and a job's model name says its region, so a
    catalog holding jobs of both regions still costs each in the right money."""

    by_region: Mapping[Region, Price]
    region: Region

    @classmethod
    def defaults(cls, region: Region = Region.SINGAPORE) -> Pricing:
        """The contract's prices, without any override (tests, a bare Catalog)."""
        return cls(by_region=DEFAULT_PRICES, region=region)

    @property
    def active(self) -> Price:
        return self.by_region[self.region]

    def for_model(self, model: str | None) -> Price:
        """The price of the region that serves `model`; ours for None (a job that
        follows the client's region) or a name we do not know."""
        region = next((r for r in self.by_region if r.model == model), self.region)
        return self.by_region[region]


class Settings(BaseSettings):
    """Everything configurable. The environment wins over the dev stack's env file."""

    model_config = SettingsConfigDict(
        env_prefix="VACEFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
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
    api_key_block: str | None = None
    """Name of a Prefect Secret block holding the key, read by the flows when no
    DASHSCOPE_API_KEY is set (a work pool's runs then carry no key in their env)."""
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
    s3_secret_key_block: str | None = None
    """Name of a Prefect Secret block holding the S3 secret key (flows only)."""
    s3_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("VACEFLOW_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
    )

    # --- the account's limits, shared by every worker -------------------------------
    account: AccountLimits = ACCOUNT
    """The contract's figures unless the account has others: VACEFLOW_ACCOUNT__IN_FLIGHT=6
    (jobs submitted and not yet ended at once), VACEFLOW_ACCOUNT__QUERY_PER_SECOND=40,
    or all at once as JSON in VACEFLOW_ACCOUNT. On a Prefect server they are set once, by
    `vaceflow dev up` or `vaceflow deploy` (or the first run, when none are there); a
    flow never resizes them, a batch may only ask for fewer in flight."""

    @field_validator("account")
    @classmethod
    def _positive(cls, value: AccountLimits) -> AccountLimits:
        if value.in_flight < 1 or value.concurrent_tasks < 1:
            raise ValueError("account: in_flight and concurrent_tasks are at least 1")
        rates = (value.submit_per_second, value.query_per_second, value.list_per_second)
        if min(*rates, value.cancel_per_second) <= 0:
            raise ValueError("account: every rate (calls a second) is above 0")
        return value

    # --- jobs -----------------------------------------------------------------------
    wait_timeout: float = Field(default=WAIT_TIMEOUT_MINUTES * 60, gt=0)
    status_interval: float = Field(default=5.0, gt=0, le=60)
    """Seconds between looks at a task around its expected end (the catalog's median run
    time): the most an end there is noticed late. Far from it the watcher sleeps longer
    (`vaceflow.waiting.schedule`); a whole batch costs one call a look."""
    catalog_url: str | None = None
    """Any SQLAlchemy URL; default: SQLite in the data folder."""
    submit_timeout: float = Field(default=30.0, gt=0, le=300)
    """Seconds the submit request waits for its answer; with its connect, write and
    pool timeouts (each at most 10 s) it bounds the window in which a lost answer's
    task can have been created (`vaceflow.reconcile`)."""
    reconcile: Literal["auto", "off"] = "auto"
    """auto: a run that meets an uncertain submit settles it from the provider's task
    list; off: it stops (exit 5) and `vaceflow catalog reconcile` or `resolve` settles it."""
    reconcile_margin: float = Field(default=10.0, ge=0, le=600)
    """Seconds added on both sides of a submit's window when reading the task list: the
    clocks of this machine and the service may differ by this much."""

    # --- trust: what a job from outside may read (vaceflow.trust) ---------------------
    allowed_roots: Annotated[tuple[Path, ...], NoDecode] = ()
    """Folders whose files jobs from intake, deployments and the UI may read (comma-
    separated); an intake's own folder is always allowed to its own files."""
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    """Internal http(s) hosts such jobs may fetch from: names, `*.domain`, IPs or networks."""
    allowed_s3: Annotated[tuple[str, ...], NoDecode] = ()
    """s3://bucket/prefix/ such jobs may read, beyond the staging bucket's inputs prefix."""
    job_file_max_bytes: int = Field(default=MAX_JOB_FILE_BYTES, ge=1)
    job_file_max_bodies: int = Field(default=MAX_JOB_FILE_BODIES, ge=1)

    @field_validator("allowed_roots", "allowed_hosts", "allowed_s3", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """`a,b` as well as a JSON list: one variable names several."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    # --- prices ---------------------------------------------------------------------
    prices: dict[Region, Price] = Field(default_factory=dict)
    """Per-region overrides of DEFAULT_PRICES, e.g.
    VACEFLOW_PRICES='{"beijing": "0.65 CNY", "singapore": "0.12 USD"}'."""
    price_per_second: float | None = Field(default=None, ge=0)
    """VACEFLOW_PRICE_PER_SECOND: the active region's price, in that region's currency;
    wins over `prices`."""

    @field_validator("prices", mode="before")
    @classmethod
    def _region_names(cls, value: Any) -> Any:
        """Accept the region aliases (`cn`, `intl`, ...) as keys."""
        if isinstance(value, Mapping):
            return {parse_region(str(k)): v for k, v in value.items()}
        return value

    @property
    def pricing(self) -> Pricing:
        """DEFAULT_PRICES, then `prices`, then `price_per_second` for the active region."""
        region = parse_region(self.region)
        table = {**DEFAULT_PRICES, **self.prices}
        if self.price_per_second is not None:
            table[region] = Price(amount=self.price_per_second, currency=table[region].currency)
        return Pricing(by_region=table, region=region)

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment, falling back to the dev stack's env file."""
        path = env_file()
        return cls(_env_file=path if path.is_file() else None)

    @property
    def data_dir(self) -> Path:
        return data_dir()
