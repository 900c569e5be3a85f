"""Driver fast paths of the transaction hook: the tenant's search_path without a round trip of
its own.

The hook's statement (``set_config('search_path', ..., true)`` plus the schema check) is the one
extra statement tenancy costs per transaction. Sent on its own it is also one extra round trip
to the server, which on a busy machine costs more than the statement. Where a driver lets us,
the statement travels together with one the transaction sends anyway; it still runs inside the
transaction, first, and reverts at its end exactly like the plain hook:

* **psycopg 3** (sync): the driver opens a transaction with a ``BEGIN`` of its own before the
  first statement. Here, when the transaction begins, ``BEGIN; SELECT set_config(...)`` is sent
  as one simple query through the connection's libpq handle (``pgconn.exec_``); psycopg sees the
  transaction open and sends no ``BEGIN`` of its own. Eager, like the plain hook: the schema is
  set (or the missing schema reported) before anything else can run.
* **psycopg2**: psycopg2 sends its own ``BEGIN`` from C, so the hook's statement is put in front
  of the transaction's first statement instead: ``SELECT set_config(...); <the statement>`` in
  one simple query (psycopg2 binds parameters on the client, so a multi-statement query is
  fine). The connections of an engine the hook is installed on are made with a
  ``connection_factory`` whose cursors do that: every cursor the connection makes (whatever
  ``cursor_factory``) applies a pending search_path before it sends anything, and a cursor that
  cannot prefix (server-side cursors, ``executemany``, ``COPY``, ``callproc``) sends it as a
  statement of its own first. Nothing pending survives ``commit()`` / ``rollback()``.

* **asyncpg**: SQLAlchemy's adapter opens the server transaction lazily, with asyncpg's
  ``Transaction.start()``, which sends ``BEGIN ...;`` through the connection's public
  ``execute()``. The engine's connections are made with a ``connection_class`` (asyncpg's own
  option) whose ``execute`` appends the pending statement to that ``BEGIN``: one simple query.
  The pending statement is set when the SQLAlchemy transaction begins and dropped when it ends.

Anything else (psycopg's async connections, pg8000, a ``connection_factory`` or
``connection_class`` of your own, a search_path with unusual characters) keeps the plain hook:
one statement through SQLAlchemy when the transaction begins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from .context import TenantBinding
from .exceptions import TenantIsolationError, TenantSchemaMissingError

__all__ = [
    "FAST_PATH_OPTION",
    "asyncpg_connect_hook",
    "clear_pending",
    "connect_hook",
    "defer_binding",
    "missing_schema_error",
    "set_path_sql",
]

#: Execution option: ``False`` makes the hook send its statement on its own, the plain way.
FAST_PATH_OPTION = "tenants_fast_path"

_SAFE_PATH = re.compile(r'[A-Za-z0-9_", ]*\Z')
_SAFE_SCHEMA = re.compile(r"[a-z][a-z0-9_]*\Z")
_sql_cache: dict[tuple[str, str | None], str | None] = {}


def missing_schema_error(binding: TenantBinding) -> TenantSchemaMissingError:
    """The error for a tenant whose schema does not exist."""
    return TenantSchemaMissingError(
        tenant=binding.name,
        message=(
            f"The schema of tenant {binding.name!r} does not exist (renamed or dropped by "
            "another process, or never created). Run 'flask tenants doctor' to find "
            "tenants without schema."
        ),
    )


def autocommit_error(binding: TenantBinding) -> TenantIsolationError:
    """The error for tenant work on a connection in AUTOCOMMIT mode."""
    return TenantIsolationError(
        f"A connection in AUTOCOMMIT mode was used in the context of tenant "
        f"{binding.name!r}: SET LOCAL search_path has no effect there, so the work would not "
        "be confined to the tenant's schema. Use a normal transaction (drop "
        "isolation_level='AUTOCOMMIT'), or leave the tenant context first."
    )


def set_path_sql(binding: TenantBinding) -> str | None:
    """The hook's statement for ``binding`` with the values inlined, or None if not foldable.

    The values are a validated schema name and a search_path made of quoted validated names;
    anything with characters beyond those (an odd shared schema name) is not inlined -- the
    plain hook, with bound parameters, serves it. The regnamespace cast fails the statement
    with SQLSTATE 3F000 when the schema is missing, so nothing after it runs.
    """
    key = (binding.search_path, binding.schema)
    try:
        return _sql_cache[key]
    except KeyError:
        pass
    sql: str | None = None
    if _SAFE_PATH.match(binding.search_path):
        lit = "'" + binding.search_path + "'"
        if binding.schema is None:
            sql = f"SELECT set_config('search_path', {lit}, true)"
        elif _SAFE_SCHEMA.match(binding.schema):
            sql = (
                f"SELECT set_config('search_path', {lit}, true), "  # noqa: S608 - validated names
                f"'\"{binding.schema}\"'::regnamespace"
            )
    if len(_sql_cache) > 100_000:
        _sql_cache.clear()
    _sql_cache[key] = sql
    return sql


def _raise_if_missing_schema(exc: BaseException, binding: TenantBinding) -> None:
    """Raise :func:`missing_schema_error` from ``exc`` when ``exc`` is ``binding``'s schema check
    failing; return otherwise (the caller re-raises ``exc``)."""
    if _is_missing_schema(exc, binding):
        raise missing_schema_error(binding) from exc


def _is_missing_schema(exc: BaseException, binding: TenantBinding) -> bool:
    """True when ``exc`` is the regnamespace check of ``binding`` failing (SQLSTATE 3F000)."""
    if binding.schema is None:
        return False
    code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    return code == "3F000" and f'"{binding.schema}"' in str(exc)


# -- psycopg 3 ---------------------------------------------------------------------------------

_psycopg: Any = None
_begin_cache: dict[tuple[Any, Any, Any], bytes] = {}


def _load_psycopg() -> Any:
    global _psycopg
    if _psycopg is None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a dependency
            _psycopg = False
        else:
            _psycopg = psycopg
    return _psycopg


def _begin_command(raw: Any) -> bytes:
    """psycopg's own BEGIN for this connection's transaction characteristics."""
    key = (raw.isolation_level, raw.read_only, raw.deferrable)
    cmd = _begin_cache.get(key)
    if cmd is None:
        parts = ["BEGIN"]
        if key[0] is not None:
            level = _psycopg.IsolationLevel(key[0]).name.replace("_", " ")
            parts.append("ISOLATION LEVEL " + level)
        if key[1] is not None:
            parts.append("READ ONLY" if key[1] else "READ WRITE")
        if key[2] is not None:
            parts.append("DEFERRABLE" if key[2] else "NOT DEFERRABLE")
        cmd = " ".join(parts).encode()
        _begin_cache[key] = cmd
    return cmd


def _psycopg_begin(raw: Any, sql: str, binding: TenantBinding) -> bool:
    """Open the transaction and set the path in one round trip; False to use the plain hook."""
    pq = _psycopg.pq
    pgconn = raw.pgconn
    if (
        raw.autocommit
        or pgconn.transaction_status != pq.TransactionStatus.IDLE
        or pgconn.pipeline_status != pq.PipelineStatus.OFF
    ):
        return False
    command = _begin_command(raw) + b"; " + sql.encode()
    with raw.lock:
        result = pgconn.exec_(command)
    if result.status == pq.ExecStatus.TUPLES_OK:
        return True
    if (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == b"3F000"
        and pgconn.transaction_status == pq.TransactionStatus.INERROR
    ):
        # left failed on purpose: nothing runs in this transaction until it is rolled back
        raise missing_schema_error(binding)
    # Anything else (a lost connection, a cancelled statement): put the connection back the way
    # psycopg left it and let the plain hook run and report it through SQLAlchemy.
    try:
        raw.rollback()
    except Exception:  # noqa: BLE001 - the plain hook reports the real problem
        pass
    return False


# -- psycopg2 ----------------------------------------------------------------------------------

FoldingConnection: Any = None


def _build_psycopg2() -> Any:
    """The psycopg2 connection class whose cursors fold the pending search_path (lazy)."""
    global FoldingConnection
    if FoldingConnection is not None:
        return FoldingConnection
    try:
        import psycopg2.extensions as ext  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        FoldingConnection = False
        return False

    base_cursor = ext.cursor

    def flush(conn: Any) -> None:
        """Send the pending statement on its own (for what cannot take a prefix)."""
        pending = conn._ft_pending
        if pending is None:
            return
        conn._ft_pending = None
        if conn.autocommit:
            raise autocommit_error(pending[1])
        cur = base_cursor(conn)
        try:
            cur.execute(pending[0])
        except Exception as exc:
            _raise_if_missing_schema(exc, pending[1])
            raise
        finally:
            cur.close()

    class FoldMixin:
        """Applies the connection's pending search_path before this cursor sends anything."""

        def execute(self, query: Any, vars: Any = None) -> Any:
            conn = self.connection  # type: ignore[attr-defined]
            pending = conn._ft_pending
            if pending is None:
                return super().execute(query, vars)  # type: ignore[misc]
            if self.name is not None:  # type: ignore[attr-defined]  # DECLARE ... CURSOR FOR
                flush(conn)
                return super().execute(query, vars)  # type: ignore[misc]
            conn._ft_pending = None
            sql, binding = pending
            if conn.autocommit:
                raise autocommit_error(binding)
            if isinstance(query, bytes):
                query = sql.encode() + b";" + query
            elif isinstance(query, str):
                query = sql + ";" + query
            else:  # psycopg2.sql.Composable
                query = sql + ";" + query.as_string(self)
            try:
                return super().execute(query, vars)  # type: ignore[misc]
            except Exception as exc:
                _raise_if_missing_schema(exc, binding)
                raise

        def executemany(self, query: Any, vars_list: Any) -> Any:
            flush(self.connection)  # type: ignore[attr-defined]
            return super().executemany(query, vars_list)  # type: ignore[misc]

        def callproc(self, *args: Any, **kw: Any) -> Any:
            flush(self.connection)  # type: ignore[attr-defined]
            return super().callproc(*args, **kw)  # type: ignore[misc]

        def copy_expert(self, *args: Any, **kw: Any) -> Any:
            flush(self.connection)  # type: ignore[attr-defined]
            return super().copy_expert(*args, **kw)  # type: ignore[misc]

        def copy_from(self, *args: Any, **kw: Any) -> Any:
            flush(self.connection)  # type: ignore[attr-defined]
            return super().copy_from(*args, **kw)  # type: ignore[misc]

        def copy_to(self, *args: Any, **kw: Any) -> Any:
            flush(self.connection)  # type: ignore[attr-defined]
            return super().copy_to(*args, **kw)  # type: ignore[misc]

    class FoldingCursor(FoldMixin, base_cursor):  # type: ignore[misc,valid-type]
        pass

    subclasses: dict[type, type] = {base_cursor: FoldingCursor}

    def folding(factory: Any) -> Any:
        if isinstance(factory, type) and issubclass(factory, FoldMixin):
            return factory
        if isinstance(factory, type) and issubclass(factory, base_cursor):
            sub = subclasses.get(factory)
            if sub is None:
                sub = type("Folding" + factory.__name__, (FoldMixin, factory), {})
                subclasses[factory] = sub
            return sub
        return None

    class _FoldingConnection(ext.connection):  # type: ignore[misc,name-defined]
        """psycopg2 connection whose cursors apply the tenant's search_path first."""

        _ft_pending: tuple[str, TenantBinding] | None = None

        def cursor(self, *args: Any, **kw: Any) -> Any:
            if len(args) > 1:
                factory = args[1]
                args = args[:1] + args[2:]
            else:
                factory = kw.pop("cursor_factory", None)
            factory = factory or self.cursor_factory or base_cursor
            sub = folding(factory)
            if sub is None:  # a factory function: apply the path now, the plain way
                flush(self)
                return super().cursor(*args, cursor_factory=factory, **kw)
            return super().cursor(*args, cursor_factory=sub, **kw)

        def commit(self) -> None:
            self._ft_pending = None
            super().commit()

        def rollback(self) -> None:
            self._ft_pending = None
            super().rollback()

        def reset(self) -> None:
            self._ft_pending = None
            super().reset()

        def tpc_commit(self, *xid: Any) -> None:
            self._ft_pending = None
            super().tpc_commit(*xid)

        def tpc_rollback(self, *xid: Any) -> None:
            self._ft_pending = None
            super().tpc_rollback(*xid)

        def lobject(self, *args: Any, **kw: Any) -> Any:
            flush(self)
            return super().lobject(*args, **kw)

    FoldingConnection = _FoldingConnection
    return FoldingConnection


def connect_hook(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    """``do_connect`` listener: psycopg2 connections are made with the folding class."""
    if getattr(dialect, "driver", None) != "psycopg2" or "connection_factory" in cparams:
        return
    cls = _build_psycopg2()
    if cls:
        cparams["connection_factory"] = cls


# -- asyncpg -------------------------------------------------------------------------------------

FoldingAsyncpgConnection: Any = None


def _build_asyncpg() -> Any:
    """The asyncpg connection class that folds the pending search_path into BEGIN (lazy)."""
    global FoldingAsyncpgConnection
    if FoldingAsyncpgConnection is not None:
        return FoldingAsyncpgConnection
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - only with the aio extra
        FoldingAsyncpgConnection = False
        return False

    class _FoldingAsyncpgConnection(asyncpg.Connection):  # type: ignore[misc]
        """asyncpg connection whose ``BEGIN`` carries the tenant's search_path."""

        _ft_pending: tuple[str, TenantBinding] | None = None

        async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
            pending = self._ft_pending
            if pending is None or args or not query.startswith("BEGIN"):
                return await super().execute(query, *args, timeout=timeout)  # type: ignore[no-any-return]
            self._ft_pending = None
            sql, binding = pending
            try:
                return await super().execute(  # type: ignore[no-any-return]
                    query.rstrip("; ") + "; " + sql, timeout=timeout
                )
            except asyncpg.PostgresError as exc:
                if not self.is_closed() and self.is_in_transaction():
                    # BEGIN ran, the statement after it failed: end that transaction here
                    # (asyncpg marks its Transaction failed and keeps none open on our side)
                    try:
                        await super().execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - the original error is the one to report
                        pass
                if getattr(self, "_top_xact", None) is not None:
                    self._top_xact = None  # else asyncpg takes the next BEGIN for a SAVEPOINT
                _raise_if_missing_schema(exc, binding)
                raise

    FoldingAsyncpgConnection = _FoldingAsyncpgConnection
    return FoldingAsyncpgConnection


def asyncpg_connect_hook(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    """``do_connect`` listener: asyncpg connections are made with the folding class."""
    if "connection_class" in cparams or "async_creator_fn" in cparams:
        return
    cls = _build_asyncpg()
    if cls:
        cparams["connection_class"] = cls


def clear_pending(conn: Connection) -> None:
    """Drop a pending search_path that no server transaction took (the transaction ended)."""
    raw = conn._dbapi_connection
    if raw is None:
        return
    apg = getattr(raw.dbapi_connection, "_connection", None)
    if apg is not None and getattr(apg, "_ft_pending", None) is not None:
        apg._ft_pending = None


# -- dispatch ------------------------------------------------------------------------------------


def defer_binding(
    conn: Connection, binding: TenantBinding, options: Mapping[str, Any], raw: Any
) -> bool:
    """Set ``binding`` for the transaction of ``conn`` by a driver fast path, if there is one.

    ``options`` are the connection's execution options and ``raw`` its driver connection.
    Returns False when the caller must run the plain hook. The caller has refused AUTOCOMMIT.

    The execution option ``tenants_fast_path`` (on an engine or a connection) chooses: False
    never, True always; unset, the fast path is taken unless something observes SQLAlchemy's
    statements (``before_cursor_execute`` / ``after_cursor_execute`` listeners, ``echo``):
    loggers, tracers and auditors then keep seeing the hook's statement as a statement of its
    own, as with the plain hook.
    """
    wanted = options.get(FAST_PATH_OPTION)
    if wanted is None:
        # SQLAlchemy's own gate: without these flags no connection event can fire at all
        if conn._has_events or conn.engine._has_events:
            dispatch = conn.dispatch
            if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
                return False
        if getattr(conn, "_echo", False):
            return False
    elif not wanted:
        return False
    cls = type(raw)
    if FoldingConnection and cls is FoldingConnection:
        sql = set_path_sql(binding)
        if sql is None or raw.autocommit:
            raw._ft_pending = None  # superseded: the plain hook sets the path right away
            return False
        raw._ft_pending = (sql, binding)
        return True
    if FoldingAsyncpgConnection:
        apg: Any = getattr(raw, "_connection", None)
        if type(apg) is FoldingAsyncpgConnection:
            sql = set_path_sql(binding)
            if sql is None or apg.is_in_transaction():
                apg._ft_pending = None
                return False
            apg._ft_pending = (sql, binding)
            return True
    if cls.__module__.startswith("psycopg.") or cls.__module__ == "psycopg":
        psycopg = _load_psycopg()
        if psycopg and cls is psycopg.Connection:
            sql = set_path_sql(binding)
            return sql is not None and _psycopg_begin(raw, sql, binding)
    return False
