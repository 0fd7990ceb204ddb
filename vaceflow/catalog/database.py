"""Opening the catalog's database and migrating it to the newest schema; the handle
(`CatalogStore`) that the ledger and the reports share.

SQLite gets WAL (readers never block the writer), a busy timeout (a second writer
waits instead of failing with "database is locked") and `BEGIN IMMEDIATE` for every
transaction: a transaction that reads and then writes takes the write lock up front,
so two processes never deadlock on a lock upgrade. Other databases keep their defaults.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from vaceflow.settings import Pricing, Settings

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "HEAD_REVISION",
    "MIGRATIONS",
    "CatalogStore",
    "create_catalog_engine",
    "default_catalog_url",
    "migrate",
    "migration_sql",
]

BUSY_TIMEOUT_SECONDS = 30.0
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0002"
"""The newest script in `migrations/versions` (a test holds the two together): a
database already there is opened without importing Alembic, a second per flow run."""


def create_catalog_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created when missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Leave transactions to us (the "begin" hook), not to the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migration_sql(url: str, revision: str = "head") -> str:
    """The migrations as SQL for `url`'s database, without connecting to it (the
    script a DBA reviews before running it)."""
    from alembic import command
    from alembic.config import Config

    out = io.StringIO()
    config = Config(output_buffer=out)
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision, sql=True)
    return out.getvalue()


def migrate(engine: Engine, revision: str = "head") -> None:
    """`alembic upgrade head` with the package's scripts; safe to run concurrently and
    repeatedly (one transaction holding the write lock; PostgreSQL: an advisory lock)."""
    if revision == "head" and _revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    config = _config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7261626)")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: not made yet)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def default_catalog_url(settings: Settings) -> str:
    """VACEFLOW_CATALOG_URL, else a SQLite file in the data folder."""
    return settings.catalog_url or f"sqlite:///{settings.data_dir / 'catalog.db'}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CatalogStore:
    """One database: its engine, its transactions, the prices and the clock. The ledger
    (`vaceflow.catalog.ledger`) and the reports (`vaceflow.catalog.reports`) are built
    on it; `vaceflow.catalog.Catalog` is both.

    One engine per catalog; safe to share between threads (each call is its own
    transaction) and to open from several processes on the same file.
    """

    def __init__(
        self,
        url: str,
        *,
        pricing: Pricing | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.url = make_url(url)
        self.pricing = pricing or Pricing.defaults()
        self._clock = clock
        self._engine = create_catalog_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """The configured catalog, migrated and ready."""
        settings = settings or Settings.load()
        catalog = cls(default_catalog_url(settings), pricing=settings.pricing)
        return catalog.upgrade()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.render_as_string(hide_password=True)!r})"

    def upgrade(self) -> Self:
        """Migrate to the newest schema (`alembic upgrade head`); idempotent."""
        migrate(self._engine)
        return self

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session
