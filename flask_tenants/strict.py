"""Strict mode (``TENANTS_STRICT = True``, opt-in): tenant data is reached only on purpose.

Without it, a query on a tenant table outside any tenant context runs against the default
``search_path`` -- usually ``public``, where it finds nothing or, worse, a stray copy of the
table -- and code in tenant ``a``'s context can read ``b.invoices`` by writing the schema name.
Strict mode refuses both, before the statement reaches the database:

* a statement touching a tenant table while no tenant is bound to the transaction raises
  :class:`~flask_tenants.exceptions.TenantContextError` (wrap the code in
  ``tenant_context(name)`` / ``with_db(name)``);
* a statement naming a schema other than the transaction's tenant, the shared schemas
  (``TENANTS_SHARED_SCHEMAS``), ``TENANTS_STRICT_ALLOWED_SCHEMAS`` and the system catalogs
  raises :class:`~flask_tenants.exceptions.TenantIsolationError`;
* ``with allow_cross_tenant():`` (or ``async with``) lifts both checks for a block, for admin
  code that means it (:func:`flask_tenants.fleet.for_each_tenant` does not need it).

How it is enforced
------------------
*Statement inspection*, in a ``before_cursor_execute`` listener on the tenancy's engines: for
SQLAlchemy constructs (ORM queries, Core ``select``/``insert``/``update``/``delete``) it reads the
``Table`` objects of the compiled statement -- exact, and computed once per compiled statement
(SQLAlchemy caches compiled statements, so the per-statement cost is a dictionary lookup). DDL
is not inspected (the lifecycle creates tenant tables with no tenant context).

For ``text()`` and driver-level SQL it can only *scan the SQL text*: tenant table names, with or
without a schema (``other.invoices``), right after ``FROM``/``JOIN``/``INTO``/``UPDATE``/
``TRUNCATE``. **This is a heuristic and is easy to get around**:
dynamic SQL in a function, a view or a ``DO`` block, comma-separated ``FROM`` lists, quoting
tricks, a table reached through a foreign key trigger -- none of it is seen. Do not rely on it
against hostile SQL.

The real boundary is **database privileges**: give each tenant's schema its own role (``GRANT
USAGE ON SCHEMA acme TO acme_role``) and ``SET LOCAL ROLE`` per transaction, or at least make
sure the application role does not own the schemas and is not a superuser (``flask tenants
doctor`` reports that). Strict mode catches the honest mistakes; privileges stop the rest.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import TextClause

from .context import TenantBinding, current_binding
from .exceptions import TenantContextError, TenantIsolationError
from .isolation import SESSION_PIN
from .models import TENANT_SCHEMA_PLACEHOLDER, is_tenant_table

__all__ = ["allow_cross_tenant", "install", "install_for_state", "is_strict", "text_references"]

_ACTIVE = "flask_tenants.strict.binding"
_INSTALLED = "_flask_tenants_strict"
_allowed: ContextVar[bool] = ContextVar("flask_tenants_allow_cross_tenant", default=False)
_SYSTEM = frozenset({"pg_catalog", "information_schema", TENANT_SCHEMA_PLACEHOLDER})
_DDL_RE = re.compile(
    r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(create|alter|drop|comment|grant|revoke)\b", re.I | re.S
)
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_AFTER_KEYWORD_RE = re.compile(
    rf"\b(?:from|join|into|update|truncate(?:\s+table)?)\s+(?:only\s+)?({_IDENT})(?:\s*\.\s*({_IDENT}))?",
    re.I,
)


class allow_cross_tenant:  # noqa: N801 - used like a function, as contextlib helpers are
    """Lift strict mode's checks for a block (``with`` or ``async with``): cross-tenant work on
    purpose. Nestable; the previous setting is restored afterwards."""

    def __init__(self) -> None:
        self._tokens: list[Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(_allowed.set(True))

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        _allowed.reset(self._tokens.pop())

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, ev, tb)


# -- which tenant the transaction runs in (mirrors flask_tenants.isolation) -------------------
def _on_begin(conn: Connection) -> None:
    conn.info[_ACTIVE] = current_binding()


def _on_session_begin(session: Session, transaction: SessionTransaction, conn: Connection) -> None:
    pinned: TenantBinding | None = session.info.get(SESSION_PIN)
    if pinned is None or pinned == current_binding():
        return
    if pinned.is_public and current_binding() is None:
        return
    conn.info[_ACTIVE] = pinned


_session_hooked = False


# -- what a statement references --------------------------------------------------------------
Ref = tuple[str | None, str, bool]  # (schema, table name, is a tenant table)
_compiled_refs: weakref.WeakKeyDictionary[Any, tuple[Ref, ...]] = weakref.WeakKeyDictionary()


def _construct_refs(compiled: Any) -> tuple[Ref, ...]:
    try:
        return _compiled_refs[compiled]
    except (KeyError, TypeError):
        pass
    seen: dict[tuple[str | None, str], bool] = {}
    for element in visitors.iterate(compiled.statement):
        if isinstance(element, Table):
            seen[(element.schema, element.name)] = is_tenant_table(element)
    refs = tuple((s, n, t) for (s, n), t in seen.items())
    try:
        _compiled_refs[compiled] = refs
    except TypeError:
        pass
    return refs


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def text_references(sql: str, tenant_table_names: Iterable[str]) -> tuple[Ref, ...]:
    """What the heuristic finds in SQL text: references to tenant tables, qualified or not,
    right after FROM/JOIN/INTO/UPDATE/TRUNCATE (see the module doc's limits)."""
    names = set(tenant_table_names)
    if not names or _DDL_RE.match(sql):
        return ()
    refs: dict[tuple[str | None, str], bool] = {}
    for m in _AFTER_KEYWORD_RE.finditer(sql):
        if m.group(2):
            schema: str | None = _unquote(m.group(1))
            table = _unquote(m.group(2))
        else:
            schema, table = None, _unquote(m.group(1))
        if table in names:
            refs[(schema, table)] = True
    return tuple((s, n, t) for (s, n), t in refs.items())


class _TextRefs:
    """A small bounded cache of text scans per SQL string."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.cache: dict[str, tuple[Ref, ...]] = {}

    def __call__(self, sql: str) -> tuple[Ref, ...]:
        hit = self.cache.get(sql)
        if hit is None:
            hit = text_references(sql, self.names)
            if len(self.cache) > 2000:
                self.cache.clear()
            self.cache[sql] = hit
        return hit


# -- the check -------------------------------------------------------------------------------
def _check(
    refs: tuple[Ref, ...],
    binding: TenantBinding | None,
    allowed_schemas: frozenset[str],
    sql: str,
) -> None:
    for schema, table, tenant_table in refs:
        if schema is None or schema == TENANT_SCHEMA_PLACEHOLDER:
            if tenant_table and (binding is None or binding.is_public):
                raise TenantContextError(
                    f"Strict mode: a statement on tenant table {table!r} ran with no tenant "
                    f"context, so it would read or write the shared schema instead of a "
                    f"tenant's. Run it inside tenant_context('<tenant>') / with_db('<tenant>'), "
                    f"or inside allow_cross_tenant() if that is intended. SQL: {sql[:200]!r}"
                )
            continue
        if schema in allowed_schemas or schema.startswith("pg_"):
            continue
        if binding is not None and schema == binding.schema:
            continue
        where = f"tenant {binding.name!r}" if binding is not None else "no tenant context"
        raise TenantIsolationError(
            f"Strict mode: a statement in {where} names schema {schema!r} ({schema}.{table}). "
            f"Reaching another tenant's schema must be explicit: wrap the code in "
            f"allow_cross_tenant(), use for_each_tenant(), or add the schema to "
            f"TENANTS_STRICT_ALLOWED_SCHEMAS if it is not a tenant's. SQL: {sql[:200]!r}"
        )


def install(
    engine: Engine | Any,
    tenant_table_names: Iterable[str],
    shared_schemas: Iterable[str] = ("public",),
    allowed_schemas: Iterable[str] = (),
) -> None:
    """Turn on the strict checks for statements run on ``engine`` (sync, or an AsyncEngine)."""
    global _session_hooked
    sync_engine: Engine = getattr(engine, "sync_engine", engine)
    if getattr(sync_engine, _INSTALLED, False):
        return
    allowed = frozenset({*_SYSTEM, *shared_schemas, *allowed_schemas})
    text_refs = _TextRefs(tuple(tenant_table_names))

    def before_cursor_execute(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if _allowed.get():
            return
        compiled = getattr(context, "compiled", None)
        if isinstance(compiled, DDLCompiler):
            return
        if compiled is not None and not isinstance(compiled.statement, TextClause):
            refs = _construct_refs(compiled)
        else:
            refs = text_refs(statement)
        if refs:
            _check(refs, conn.info.get(_ACTIVE), allowed, statement)

    event.listen(sync_engine, "begin", _on_begin)
    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    if not _session_hooked:
        event.listen(Session, "after_begin", _on_session_begin)
        _session_hooked = True
    setattr(sync_engine, _INSTALLED, True)


def install_for_state(state: Any, app: Any = None) -> None:
    """Install strict mode on the engines of a tenancy whose settings ask for it (both doors
    call this when they register the tenancy; a no-op unless ``TENANTS_STRICT``)."""
    if not state.settings.strict:
        return
    engines = [state.engine]
    fsa = getattr(state, "fsa", None)
    if fsa is not None and app is not None:
        with app.app_context():  # Flask-SQLAlchemy: every bind's engine
            engines.extend(fsa.engines.values())
    names = tuple(t.name for t in state.tenant_tables)
    for engine in engines:
        if engine is not None:
            install(
                engine,
                names,
                state.settings.shared_schemas,
                state.settings.strict_allowed_schemas,
            )


def is_strict(engine: Engine | Any) -> bool:
    """True when strict mode is installed on ``engine``."""
    return bool(getattr(getattr(engine, "sync_engine", engine), _INSTALLED, False))
