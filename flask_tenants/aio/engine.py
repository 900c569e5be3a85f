"""Building the async engine and session maker of the Quart door (the one place that knows how).

* A plain ``postgresql://`` URL (or ``postgres://``, or ``postgresql+psycopg2://``, which has no
  asyncio support) becomes ``postgresql+asyncpg://``; ``postgresql+asyncpg://`` and
  ``postgresql+psycopg://`` (psycopg 3 is async-capable) are used as they are. So one
  ``SQLALCHEMY_DATABASE_URI`` can serve a Flask app and a Quart app.
* Behind PgBouncer in transaction mode, asyncpg's prepared statements must be turned off: add
  ``?prepared_statement_cache_size=0`` to the URL. The engine then also turns off asyncpg's own
  statement cache (``statement_cache_size=0``) and gives every prepared statement a unique name,
  so two clients sharing a server connection never collide on ``__asyncpg_stmt_1__``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..exceptions import ConfigurationError

__all__ = [
    "async_database_url",
    "create_tenancy_engine",
    "create_session_maker",
    "pgbouncer_connect_args",
]

_ASYNC_DRIVERS = ("asyncpg", "psycopg", "psycopg_async")


def async_database_url(url: str | URL) -> URL:
    """``url`` with an asyncio driver: asyncpg unless it already names one."""
    u = make_url(url)
    backend, _, driver = u.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"flask-tenants needs PostgreSQL, but the database URL names {u.drivername!r}: use "
            "a URL such as 'postgresql+asyncpg://user:password@host/db'."
        )
    if driver in ("", "psycopg2", "pg8000"):
        driver = "asyncpg"
    elif driver not in _ASYNC_DRIVERS:
        raise ConfigurationError(
            f"The database driver {driver!r} has no asyncio support: use "
            "'postgresql+asyncpg://...' for the Quart door."
        )
    return u.set(drivername=f"postgresql+{driver}")


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def pgbouncer_connect_args() -> dict[str, Any]:
    """asyncpg ``connect_args`` for PgBouncer in transaction (or statement) pooling mode.

    ``create_async_engine(url, connect_args=pgbouncer_connect_args())`` does the same as adding
    ``?prepared_statement_cache_size=0`` to a URL given to the Quart door.
    """
    return {
        "prepared_statement_cache_size": 0,
        "statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _engine_options(url: URL, options: Mapping[str, Any]) -> tuple[URL, dict[str, Any]]:
    opts = dict(options)
    if url.get_driver_name() != "asyncpg":
        return url, opts
    connect_args = dict(opts.get("connect_args") or {})
    query = dict(url.query)
    # asyncpg wants integers; from a URL they arrive as strings
    for key in ("statement_cache_size", "prepared_statement_cache_size"):
        if key in query:
            raw = query.pop(key)
            value = raw[0] if isinstance(raw, tuple) else raw
            try:
                connect_args.setdefault(key, int(value))
            except ValueError:
                raise ConfigurationError(f"{key} in the database URL must be an integer") from None
    if connect_args.get("prepared_statement_cache_size") == 0:
        for key, value in pgbouncer_connect_args().items():
            connect_args.setdefault(key, value)
    if connect_args:
        opts["connect_args"] = connect_args
    return url.set(query=query), opts


def create_tenancy_engine(url: str | URL, options: Mapping[str, Any] | None = None) -> AsyncEngine:
    """An AsyncEngine for ``url`` (mapped by :func:`async_database_url`) with ``options``."""
    u, opts = _engine_options(async_database_url(url), options or {})
    return create_async_engine(u, **opts)


def create_session_maker(
    engine: AsyncEngine, options: Mapping[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """The door's session factory. ``expire_on_commit`` is off by default: in async code an
    expired attribute cannot be lazy-loaded, so objects stay readable after ``commit()``."""
    opts: dict[str, Any] = {"expire_on_commit": False}
    opts.update(options or {})
    return async_sessionmaker(engine, **opts)
