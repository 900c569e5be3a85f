"""AsyncSessions in a tenant's schema: :func:`with_db`, closing that survives cancellation, and
what to do when a prepared statement went stale between tenants.

The schema is chosen by the core's transaction hook (:mod:`flask_tenants.isolation`): the session
is *pinned* to its tenant, and every transaction it begins -- however many commits a block makes
-- starts with ``set_config('search_path', ..., true)``. Nothing here sets a search_path.

Stale prepared statements
-------------------------
asyncpg prepares every statement and keeps it per connection. PostgreSQL re-plans a prepared
statement when the ``search_path`` changed, so a statement prepared for tenant ``a`` and run for
tenant ``b`` reads ``b``'s tables: never another tenant's rows. But when the two tenants' tables
differ in shape (mid-migration, ``SELECT *`` over a table with an extra column, a column whose
type changed) PostgreSQL refuses with *cached plan must not change result type*; asyncpg raises
``InvalidCachedStatementError``, SQLAlchemy clears its statement caches and the transaction is
aborted. A second try succeeds. flask-tenants therefore

* retries a request's view once when that error ends it and nothing was committed yet in the
  request (``TENANTS_RETRY_STALE_STATEMENTS``, default True), else answers
  :class:`StaleStatementError` (503, with a message for the operator);
* retries its own lifecycle transactions (``await tenancy.create_tenant(...)``) once;
* adds a note saying what happened to the error when it leaves a :func:`with_db` block, and
  offers :func:`run_in_tenant` which retries a whole unit of work once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.exceptions import HTTPException

from ..context import TenantBinding, _reset, _set, current_binding
from ..exceptions import FlaskTenantsError
from ..isolation import pin_session
from ..state import TenancyState, current_state

__all__ = [
    "with_db",
    "run_in_tenant",
    "close_session",
    "pin_async_session",
    "is_stale_statement_error",
    "StaleStatementError",
]

log = logging.getLogger("flask_tenants")
T = TypeVar("T")

_STALE_MESSAGE = "cached plan must not change result type"


class StaleStatementError(FlaskTenantsError, HTTPException):
    """A prepared statement went stale between tenants whose tables differ in shape, and the
    request could not be retried (it had already committed). Answers 503: try again."""

    code = 503
    description = (
        "A cached database statement went stale (tenants' tables differ in shape, e.g. during a "
        "migration); nothing of the failed transaction was kept. Try again."
    )

    def __init__(self, tenant: str | None = None, message: str = "") -> None:
        self.tenant = tenant
        FlaskTenantsError.__init__(self, message or self.description)
        HTTPException.__init__(self, description=message or self.description)

    def __str__(self) -> str:
        return str(self.description)


def is_stale_statement_error(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what it wraps) is asyncpg's ``InvalidCachedStatementError`` or
    PostgreSQL's *cached plan must not change result type*."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "InvalidCachedStatementError":
            return True
        if _STALE_MESSAGE in str(exc):
            return True
        nxt = getattr(exc, "orig", None)
        exc = nxt if isinstance(nxt, BaseException) else exc.__cause__
    return False


def explain_stale(exc: BaseException, tenant: str | None) -> None:
    """Attach a note saying what a stale-statement error means and what to do."""
    note = (
        f"flask-tenants: a prepared statement cached on this pooled connection for another "
        f"tenant no longer fits tenant {tenant!r}'s tables (their shapes differ, e.g. during a "
        "migration). PostgreSQL refused it, so no wrong rows were read; the statement caches "
        "have been cleared and the transaction rolled back. Run the unit of work again "
        "(flask_tenants.aio.run_in_tenant() does that once for you)."
    )
    if hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


def pin_async_session(session: AsyncSession, binding: TenantBinding) -> AsyncSession:
    """Tie ``session`` to ``binding``: its transactions use that tenant wherever they begin."""
    pin_session(session.sync_session, binding)
    return session


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            log.warning("flask-tenants: closing a session failed: %r", exc)


async def close_session(session: AsyncSession) -> None:
    """Close ``session``, also when the calling task is being cancelled.

    The close runs in its own task and is shielded: a second cancellation of the caller cannot
    interrupt it halfway and leave a connection checked out of the pool.
    """
    if not session.in_transaction():
        # nothing to give back to the pool: the close does no I/O, so nothing can interrupt it
        await session.close()
        return
    task = asyncio.ensure_future(session.close())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_consume)
        raise
    except DBAPIError as exc:
        # the server closed the connection (killed, restarted): there is nothing left to roll
        # back, the pool has discarded it, and the request's answer stands
        if not exc.connection_invalidated:
            raise
        log.warning("flask-tenants: the session's connection was lost: %s", exc.orig)


def _binding(state: TenancyState, tenant: str | None) -> TenantBinding:
    if tenant is not None:
        return state.binding(tenant)
    return current_binding() or state.public


@asynccontextmanager
async def session_in(state: TenancyState, tenant: str | None) -> AsyncIterator[AsyncSession]:
    """A new AsyncSession of ``state`` pinned to ``tenant`` (default: the current one); the
    block runs in that tenant's context. Closed afterwards; nothing committed for you."""
    binding = _binding(state, tenant)
    session = pin_async_session(state.session_maker(), binding)
    token = _set(binding)
    try:
        yield session
    except Exception as exc:
        if is_stale_statement_error(exc):
            explain_stale(exc, binding.name)
        raise
    finally:
        try:
            await close_session(session)
        finally:
            _reset(token)


@asynccontextmanager
async def with_db(database: Any = None, tenant: str | None = None) -> AsyncIterator[AsyncSession]:
    """A new AsyncSession working in a tenant's schema, closed when the block ends.

    * ``async with with_db() as session:`` in a request: the request's tenant.
    * ``async with with_db("acme") as session:`` anywhere with an app context (background tasks,
      scripts: ``async with app.app_context():``): tenant ``acme``. Nestable; the outer tenant is
      restored afterwards, and every transaction begun in the block runs in that tenant's schema.

    Nothing is committed for you: ``await session.commit()``.
    """
    if isinstance(database, str):
        tenant, database = database, None
    elif database is not None:
        raise TypeError("with_db() takes a tenant name: async with with_db('acme') as session")
    async with session_in(current_state(), tenant) as session:
        yield session


async def run_in_tenant(
    tenant: str | None,
    fn: Callable[[AsyncSession], Awaitable[T]],
    *,
    state: TenancyState | None = None,
) -> T:
    """Run ``await fn(session)`` in ``tenant``'s schema and commit; retried once, in a new
    transaction, when a prepared statement went stale (see the module docs)."""
    st = state or current_state()
    for attempt in (1, 2):
        try:
            async with session_in(st, tenant) as session:
                result = await fn(session)
                await session.commit()
                return result
        except Exception as exc:
            if attempt == 1 and is_stale_statement_error(exc):
                log.info("flask-tenants: stale prepared statement for %r, retrying once", tenant)
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover
