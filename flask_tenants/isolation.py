"""The one mechanism that confines database work to a tenant's schema.

When a transaction begins on an engine the library manages, the hook sets the tenant's
``search_path`` with ``set_config('search_path', :path, true)`` -- the transaction-local form of
``SET LOCAL`` that takes a bound parameter. It reverts at commit, rollback or error, so nothing is
ever left on a pooled connection (or on a PgBouncer server connection in transaction mode).

The same statement checks that the tenant's schema exists: PostgreSQL silently skips a missing
schema in ``search_path``, which would send tenant queries to ``public``; here a missing schema
fails the transaction with :class:`~flask_tenants.exceptions.TenantSchemaMissingError` instead.

Both doors use it: the async engine's ``sync_engine`` fires the same event.

With psycopg 3 and psycopg2 the statement costs no round trip of its own: it travels with the
transaction's ``BEGIN`` or first statement (:mod:`flask_tenants._fold`; execution option
``tenants_fast_path``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from ._fold import connect_hook, defer_binding
from .context import TenantBinding, current_binding
from .exceptions import TenantIsolationError, TenantSchemaMissingError

__all__ = ["install", "apply_binding", "pin_session", "SESSION_PIN", "is_installed"]

SESSION_PIN = "flask_tenants.binding"
_INSTALLED = "_flask_tenants_isolation"

_SET_PATH = text(
    "SELECT set_config('search_path', :path, true), to_regnamespace(:schema) IS NOT NULL"
)
_SET_PUBLIC_PATH = text("SELECT set_config('search_path', :path, true)")


def _is_autocommit(conn: Connection) -> bool:
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    # create_engine(isolation_level="AUTOCOMMIT") is not an execution option: ask the driver's
    # connection (psycopg2, psycopg 3, asyncpg's adapter and pg8000 all have .autocommit)
    dbapi = conn.connection.dbapi_connection
    return bool(getattr(dbapi, "autocommit", False))


def apply_binding(conn: Connection, binding: TenantBinding) -> None:
    """Set ``binding``'s search_path for the transaction now open on ``conn``."""
    if _is_autocommit(conn):
        raise TenantIsolationError(
            f"A connection in AUTOCOMMIT mode was used in the context of tenant "
            f"{binding.name!r}: SET LOCAL search_path has no effect there, so the work would not "
            "be confined to the tenant's schema. Use a normal transaction (drop "
            "isolation_level='AUTOCOMMIT'), or leave the tenant context first."
        )
    if defer_binding(conn, binding):  # psycopg2 / psycopg 3: no round trip of its own
        return
    if binding.schema is None:
        conn.execute(_SET_PUBLIC_PATH, {"path": binding.search_path})
        return
    row = conn.execute(_SET_PATH, {"path": binding.search_path, "schema": binding.schema}).one()
    if not row[1]:
        raise TenantSchemaMissingError(
            tenant=binding.name,
            message=(
                f"The schema of tenant {binding.name!r} does not exist (renamed or dropped by "
                "another process, or never created). Run 'flask tenants doctor' to find "
                "tenants without schema."
            ),
        )


def _on_begin(conn: Connection) -> None:
    binding = current_binding()
    if binding is None:
        return
    try:
        apply_binding(conn, binding)
    except BaseException:
        _abandon_begin(conn)
        raise


def _abandon_begin(conn: Connection) -> None:
    """Leave ``conn`` able to begin again after the hook failed inside its "begin" event.

    SQLAlchemy marks a Connection as beginning before it runs the "begin" listeners and clears
    the mark only when they return: after a listener raised (missing schema, a killed
    connection, a statement error), the Connection would never begin a transaction again, so
    its later transactions would run without this hook -- in whatever search_path the server
    connection had, e.g. ``public``. Roll back what the hook's statement opened and clear the
    mark, so that the next transaction runs the hook again.
    """
    if not conn.invalidated:
        try:
            dbapi = conn.connection.dbapi_connection
            if dbapi is not None:
                dbapi.rollback()
        except Exception:  # noqa: BLE001 - a dead connection fails its next use, as it should
            pass
    flag = "_Connection__in_begin"
    if getattr(conn, flag, False):
        setattr(conn, flag, False)


def _on_session_begin(session: Session, transaction: SessionTransaction, conn: Connection) -> None:
    pinned: TenantBinding | None = session.info.get(SESSION_PIN)
    if pinned is None or pinned == current_binding():
        return
    # The session belongs to another tenant than the context it began in (e.g. the request's
    # session first used inside a nested with_db() block): its own tenant wins.
    if pinned.is_public and current_binding() is None:
        return
    apply_binding(conn, pinned)


event.listen(Session, "after_begin", _on_session_begin)


def pin_session(session: Session, binding: TenantBinding) -> Session:
    """Tie ``session`` to ``binding``: its transactions use that tenant wherever they begin."""
    session.info[SESSION_PIN] = binding
    return session


def install(engine: Engine | Any) -> None:
    """Attach the transaction hook to ``engine`` (a sync Engine, or an AsyncEngine's)."""
    sync_engine: Engine = getattr(engine, "sync_engine", engine)
    if getattr(sync_engine, _INSTALLED, False):
        return
    event.listen(sync_engine, "begin", _on_begin)
    if getattr(sync_engine.dialect, "driver", None) == "psycopg2":
        event.listen(sync_engine, "do_connect", connect_hook)  # see _fold: psycopg2 only
    setattr(sync_engine, _INSTALLED, True)


def is_installed(engine: Engine | Any) -> bool:
    return bool(getattr(getattr(engine, "sync_engine", engine), _INSTALLED, False))
