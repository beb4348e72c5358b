"""Alembic environment for jobwarden: runs on the connection `store.migrate` passes in.

`migrate(url)` opens the connection (with the dialect's locking) and hands it over in
`config.attributes["connection"]`; this file only configures the context and runs the scripts.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from jobwarden_server.store import _tables
from jobwarden_server.store._migrate import migration_engine
from jobwarden_server.store._open import parse_database_url


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_tables.metadata,
        # SQLite can alter almost nothing in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    # Only for the alembic command line during development (`-x url=...`, e.g. to autogenerate).
    engine = migration_engine(parse_database_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


_connection = context.config.attributes.get("connection")
if isinstance(_connection, sa.Connection):
    _run(_connection)
else:
    _url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not _url:
        raise RuntimeError("run migrations with jobwarden_server.store.migrate(url), or pass -x url=...")
    asyncio.run(_run_from_url(_url))
