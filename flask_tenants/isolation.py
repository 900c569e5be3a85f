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

The hook is not an engine event listener: any engine listener makes SQLAlchemy dispatch events
on every execute, commit and rollback of every connection (measured ~20 us per transaction).
:func:`install` gives the engine a :class:`~sqlalchemy.engine.Connection` subclass whose
transaction start runs the hook instead, and an option-engine class that keeps it for
``engine.execution_options(...)``. Should a SQLAlchemy release drop those hooks, it falls back to a
``begin`` listener.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from ._fold import (
    asyncpg_connect_hook,
    autocommit_error,
    clear_pending,
    connect_hook,
    defer_binding,
    missing_schema_error,
)
from .context import TenantBinding, current_binding
from .resolution import invalidate_all, watched_tables

__all__ = [
    "install",
    "apply_binding",
    "pin_session",
    "SESSION_PIN",
    "is_installed",
    "TenantConnection",
    "AsyncpgTenantConnection",
    "commit_counter",
]

SESSION_PIN = "flask_tenants.binding"
_INSTALLED = "_flask_tenants_isolation"

_SET_PATH = text(
    "SELECT set_config('search_path', :path, true), to_regnamespace(:schema) IS NOT NULL"
)
_SET_PUBLIC_PATH = text("SELECT set_config('search_path', :path, true)")


def apply_binding(conn: Connection, binding: TenantBinding) -> None:
    """Set ``binding``'s search_path for the transaction now open on ``conn``."""
    options = conn._execution_options
    raw = conn.connection.dbapi_connection
    # create_engine(isolation_level="AUTOCOMMIT") is not an execution option: ask the driver's
    # connection too (psycopg2, psycopg 3, asyncpg's adapter and pg8000 all have .autocommit)
    if options.get("isolation_level") == "AUTOCOMMIT" or getattr(raw, "autocommit", False):
        raise autocommit_error(binding)
    if defer_binding(conn, binding, options, raw):  # no round trip of its own
        return
    if binding.schema is None:
        conn.execute(_SET_PUBLIC_PATH, {"path": binding.search_path})
        return
    row = conn.execute(_SET_PATH, {"path": binding.search_path, "schema": binding.schema}).one()
    if not row[1]:
        raise missing_schema_error(binding)


def _on_begin(conn: Connection) -> None:
    binding = current_binding()
    if binding is None:
        return
    try:
        apply_binding(conn, binding)
    except BaseException:
        _abandon_begin(conn)
        raise


_IN_BEGIN = "_Connection__in_begin"


class TenantConnection(Connection):
    """A Connection whose every transaction starts in the current tenant's search_path."""

    def _begin_impl(self, transaction: Any) -> None:
        super()._begin_impl(transaction)
        binding = current_binding()
        if binding is None:
            return
        # the hook's statement runs as part of beginning: no autobegin of a nested transaction
        setattr(self, _IN_BEGIN, True)
        try:
            apply_binding(self, binding)
        except BaseException:
            _abandon_begin(self)
            raise
        finally:
            setattr(self, _IN_BEGIN, False)

    def _execute_clauseelement(
        self, elem: Any, distilled_parameters: Any, execution_options: Any
    ) -> Any:
        # Bulk UPDATE/DELETE of tenants or domains (Tenant.query.filter(...).update(...), Core
        # DML) fire no mapper events; noticed here, they clear the resolution cache at commit.
        if elem.is_dml and getattr(elem, "table", None) in watched_tables:
            self._ft_tenancy_changed = True
        return super()._execute_clauseelement(elem, distilled_parameters, execution_options)

    def _commit_impl(self) -> None:
        super()._commit_impl()
        if self.__dict__.pop("_ft_tenancy_changed", False):
            invalidate_all()
        counter = commit_counter.get()
        if counter is not None:
            counter[0] += 1

    def _rollback_impl(self) -> None:
        self.__dict__.pop("_ft_tenancy_changed", None)
        super()._rollback_impl()


class AsyncpgTenantConnection(TenantConnection):
    """On asyncpg the path waits on the driver connection for the transaction's BEGIN
    (:mod:`flask_tenants._fold`): every transaction starts by dropping one that a transaction
    before it set but never sent (it began and ended without a statement)."""

    def _begin_impl(self, transaction: Any) -> None:
        clear_pending(self)  # also when no tenant is set: nothing from before may apply
        super()._begin_impl(transaction)


#: A one-item list counting commits while set (the Quart door's stale-statement retry reads it
#: per request; the greenlets SQLAlchemy runs sync code in share the task's context).
commit_counter: ContextVar[list[int] | None] = ContextVar(
    "flask_tenants_commit_counter", default=None
)


def _hookable(engine: Engine) -> bool:
    return (
        hasattr(Connection, "_begin_impl")
        and hasattr(Connection, "_commit_impl")
        and isinstance(getattr(engine, "_connection_cls", None), type)
        and isinstance(getattr(engine, "_option_cls", None), type)
    )


_connection_classes: dict[tuple[type, bool], type] = {
    (Connection, False): TenantConnection,
    (Connection, True): AsyncpgTenantConnection,
}
_option_classes: dict[tuple[type, type], type] = {}


def _tenant_connection_class(base: type, asyncpg: bool) -> type:
    cls = _connection_classes.get((base, asyncpg))
    if cls is None:
        if issubclass(base, TenantConnection):
            return base
        mixin = AsyncpgTenantConnection if asyncpg else TenantConnection
        cls = type("Tenant" + base.__name__, (mixin, base), {})
        _connection_classes[(base, asyncpg)] = cls
    return cls


def _tenant_option_class(base: type, conn_cls: type) -> type:
    cls = _option_classes.get((base, conn_cls))
    if cls is None:
        cls = type("Tenant" + base.__name__, (base,), {"_connection_cls": conn_cls})
        cls._option_cls = cls  # type: ignore[attr-defined]  # options of options keep it
        _option_classes[(base, conn_cls)] = cls
    return cls


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
    driver = getattr(sync_engine.dialect, "driver", None)
    if _hookable(sync_engine):
        conn_cls = _tenant_connection_class(sync_engine._connection_cls, driver == "asyncpg")
        sync_engine._connection_cls = conn_cls  # type: ignore[assignment]
        sync_engine._option_cls = _tenant_option_class(  # type: ignore[assignment]
            sync_engine._option_cls, conn_cls
        )
    else:  # pragma: no cover - a SQLAlchemy without the Connection hooks
        event.listen(sync_engine, "begin", _on_begin)
        event.listen(sync_engine, "commit", _count_commit_event)
    if driver == "psycopg2":  # see _fold: these connections carry the path into a statement
        event.listen(sync_engine, "do_connect", connect_hook)
    elif driver == "asyncpg" and _hookable(sync_engine):
        event.listen(sync_engine, "do_connect", asyncpg_connect_hook)
    setattr(sync_engine, _INSTALLED, True)


def _count_commit_event(conn: Connection) -> None:  # pragma: no cover - fallback only
    counter = commit_counter.get()
    if counter is not None:
        counter[0] += 1


def is_installed(engine: Engine | Any) -> bool:
    return bool(getattr(getattr(engine, "sync_engine", engine), _INSTALLED, False))
