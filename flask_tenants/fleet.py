"""Cross-tenant work, on purpose: run a function or a query in every tenant's schema.

Reports and admin tasks ("how many invoices does each tenant have?", "re-index every tenant")
must leave the one-tenant-per-request rule explicitly. :func:`for_each_tenant` does it one tenant
at a time, each in its own session and transaction, inside that tenant's context, and yields
``(tenant, result)``::

    from flask_tenants.fleet import for_each_tenant

    with app.app_context():
        for tenant, n in for_each_tenant(lambda s: s.scalar(select(func.count(Invoice.id)))):
            print(tenant, n)

        # a statement is executed and its rows returned
        for tenant, rows in for_each_tenant(select(Invoice.id).where(Invoice.paid.is_(False))):
            ...

The async form, :func:`for_each_tenant_async`, runs a bounded number of tenants concurrently on
the async door (or on any ``AsyncEngine`` given as ``engine=``) and yields results as they
complete. Both share the core: the tenant list is read by the same sync function, and the
schema is chosen by the same transaction hook (:mod:`flask_tenants.isolation`).

Nothing is committed unless ``commit=True``; by default every tenant's transaction is rolled
back, so a report cannot change data by accident.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

from .context import _reset, _set
from .exceptions import ConfigurationError
from .isolation import install, pin_session
from .naming import validate_tenant_name
from .state import TenancyState, current_state

__all__ = ["for_each_tenant", "for_each_tenant_async", "tenant_names"]

Errors = Literal["raise", "return"]


def tenant_names(
    session: Session, state: TenancyState, include_deactivated: bool = True
) -> list[str]:
    """The names of the tenants of ``state``, sorted (a plain function over a sync Session)."""
    t = state.tenant_model.__table__
    query = select(t.c.name).order_by(t.c.name)
    if not include_deactivated and state.has_deactivated:
        query = query.where(t.c.deactivated.is_(False))
    return [r[0] for r in session.execute(query)]


def _chosen(
    state: TenancyState, tenants: Iterable[str] | None, listed: Callable[[], list[str]]
) -> list[str]:
    if tenants is None:
        return listed()
    names = [tenants] if isinstance(tenants, str) else list(tenants)
    for n in names:
        validate_tenant_name(n, state.settings.shared_schemas)
    return names


def _check_errors(errors: str) -> None:
    if errors not in ("raise", "return"):
        raise ValueError("errors must be 'raise' (stop at the first failure) or 'return'")


def for_each_tenant(
    fn: Callable[[Session], Any] | Executable,
    tenants: Iterable[str] | None = None,
    *,
    commit: bool = False,
    include_deactivated: bool = True,
    errors: Errors = "raise",
    state: TenancyState | None = None,
) -> Iterator[tuple[str, Any]]:
    """Run ``fn(session)`` (or execute a statement) in each tenant, one after the other.

    * ``tenants``: names to visit, in that order (default: every tenant, sorted by name;
      ``include_deactivated=False`` skips deactivated ones).
    * each tenant gets a new Session in its own transaction, inside ``tenant_context(name)``:
      everything ``fn`` runs (other sessions included) is confined to that schema;
    * ``commit=True`` commits each tenant's transaction after ``fn`` returns, else it is rolled
      back;
    * ``errors='return'`` yields ``(tenant, exception)`` for a tenant that failed and goes on;
      by default the first exception stops the loop (tenants already committed stay committed).

    Lazy: a tenant is processed when the iterator reaches it. Needs an app context (sync door).
    """
    _check_errors(errors)
    st = state or current_state()
    if getattr(st, "is_async", False):
        raise ConfigurationError(
            "for_each_tenant() runs on the sync door; on the Quart door use "
            "'async for tenant, result in for_each_tenant_async(...)'."
        )

    def listed() -> list[str]:
        token = _set(None)
        try:
            with st.session_maker() as s:
                return tenant_names(s, st, include_deactivated)
        finally:
            _reset(token)

    for name in _chosen(st, tenants, listed):
        binding = st.binding(name)
        token = _set(binding)
        session: Session = pin_session(st.session_maker(), binding)
        try:
            if isinstance(fn, Executable):
                result: Any = session.execute(fn).all()
            else:
                result = fn(session)
            if commit:
                session.commit()
            else:
                session.rollback()
        except Exception as exc:
            session.rollback()
            if errors == "raise":
                raise
            result = exc
        finally:
            session.close()
            _reset(token)
        yield name, result


async def for_each_tenant_async(
    fn: Callable[[Any], Awaitable[Any]] | Executable,
    tenants: Iterable[str] | None = None,
    *,
    concurrency: int = 4,
    commit: bool = False,
    include_deactivated: bool = True,
    errors: Errors = "raise",
    state: TenancyState | None = None,
    engine: Any = None,
) -> AsyncIterator[tuple[str, Any]]:
    """Run ``await fn(session)`` (an ``AsyncSession``; or execute a statement) in each tenant,
    at most ``concurrency`` tenants at a time; yields ``(tenant, result)`` as they complete.

    The sessions come from the async door's session maker (Quart app context), or from
    ``engine`` (an ``AsyncEngine``, e.g. ``create_async_engine('postgresql+asyncpg://...')``)
    when given -- the transaction hook is installed on it. Leaving the ``async for`` early
    cancels the tenants still running (their transactions roll back). Other arguments as
    :func:`for_each_tenant`.
    """
    _check_errors(errors)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    st = state or current_state()
    maker = _async_maker(st, engine)

    async def listed_async() -> list[str]:
        token = _set(None)
        try:
            async with maker() as s:
                names: list[str] = await s.run_sync(
                    lambda sync: tenant_names(sync, st, include_deactivated)
                )
                return names
        finally:
            _reset(token)

    names = _chosen(st, tenants, lambda: [])
    if tenants is None:
        names = await listed_async()

    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in names:
        queue.put_nowait(n)
    done: asyncio.Queue[tuple[str, Any, BaseException | None]] = asyncio.Queue()

    async def run_one(name: str) -> Any:
        binding = st.binding(name)
        _set(binding)  # this task's own context copy: nothing leaks to the caller
        session = maker()
        pin_session(session.sync_session, binding)
        try:
            if isinstance(fn, Executable):
                result: Any = (await session.execute(fn)).all()
            else:
                result = await fn(session)
            if commit:
                await session.commit()
            else:
                await session.rollback()
            return result
        finally:
            await asyncio.shield(session.close())

    async def worker() -> None:
        while True:
            try:
                name = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                done.put_nowait((name, await run_one(name), None))
            except Exception as exc:
                done.put_nowait((name, None, exc))

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(names)))]
    try:
        for _ in range(len(names)):
            name, result, exc = await done.get()
            if exc is not None:
                if errors == "raise":
                    raise exc
                result = exc
            yield name, result
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def _async_maker(st: TenancyState, engine: Any) -> Callable[[], Any]:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    if engine is not None:
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                "for_each_tenant_async(engine=...) needs an AsyncEngine "
                "(sqlalchemy.ext.asyncio.create_async_engine); for a sync engine use "
                "for_each_tenant()."
            )
        install(engine)
        return async_sessionmaker(engine, expire_on_commit=False)
    if not getattr(st, "is_async", False):
        raise ConfigurationError(
            "for_each_tenant_async() needs the async door (Quart app context) or an AsyncEngine: "
            "for_each_tenant_async(fn, engine=create_async_engine('postgresql+asyncpg://...'))."
        )
    return st.session_maker  # type: ignore[no-any-return]
