"""Alembic's entry point: migrate on the connection `Catalog.upgrade()` hands over.

`alembic -c ... upgrade head` from a shell also works: without a connection in the
config's attributes, one is made from `sqlalchemy.url`. Offline (`--sql`) prints the
SQL for that URL's database instead, for a DBA to run (`vaceflow.catalog.database.migration_sql`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from vaceflow.catalog.schema import Base


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url to migrate")
    engine = create_engine(url)
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run()
