"""The async door: the Quart extension.

:class:`QuartTenants` is :class:`flask_tenants.FlaskTenants` for Quart: the same constructor, the
same settings, blueprints and scopes (all from :class:`flask_tenants._door.TenancyDoor`), the
same resolver and cache, models, schema lifecycle and transaction hook from the core. What is
its own is only about awaiting: the host lookup runs on the async engine, ``g.db_session`` is an
``AsyncSession``, the lifecycle methods are coroutines that run the core's lifecycle functions
through ``session.run_sync``, and tenant-host paths are rewritten in ASGI instead of WSGI.

The 0.4 entry points exist here too, with the same call shapes: ``init_app(app, Tenant, Domain)``
then ``create_tenancy(app)``, or ``MultiTenancyMiddleware(app)``; ``FlaskTenants`` is an alias of
``QuartTenants``, so moving an app from Flask to Quart changes imports, not code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any, TypeVar

from quart import (
    Blueprint,
    Quart,
    current_app,
    g,
    has_app_context,
    request,
    websocket,
)
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session

from .. import lifecycle
from .._door import TenancyDoor, find_model
from .._frameworks import EXTENSION_KEY
from ..context import TenantBinding, _reset, _set, current_binding
from ..declarative import Base
from ..exceptions import ConfigurationError
from ..extension import PENDING_KEY
from ..identification import IDENTIFIED_KEY
from ..isolation import commit_counter, install
from ..models import DomainMixin, TenantMixin
from ..resolution import Resolution
from ..state import TenancyState
from .engine import create_session_maker, create_tenancy_engine
from .routing import GONE_KEY, SESSION_KEY, TenantPathASGIMiddleware, wrap_url_for
from .session import (
    StaleStatementError,
    close_session,
    is_stale_statement_error,
    log,
    pin_async_session,
    session_in,
)

__all__ = ["QuartTenants", "FlaskTenants", "MultiTenancyMiddleware", "create_tenancy", "init_app"]

T = TypeVar("T")
#: ``g`` key of the request's record: (session, context token, commit-counter token, scope)
_REQUEST = "_flask_tenants_request"


def init_app(
    app: Quart, tenant_model: type | None = None, domain_model: type | None = None, db: Any = None
) -> None:
    """Register the tenancy models on ``app`` (0.4 API); :func:`create_tenancy` completes it."""
    if EXTENSION_KEY in app.extensions or PENDING_KEY in app.extensions:
        raise ConfigurationError(
            "flask_tenants.aio.init_app() was already called on this app. Call it once per app; "
            "create_tenancy(app) then completes the setup."
        )
    app.extensions[PENDING_KEY] = (tenant_model, domain_model, db)


def _metadatas(db: Any, tenant_model: type, domain_model: type | None) -> list[MetaData]:
    out: list[MetaData] = []
    candidates: list[Any] = []
    if isinstance(db, MetaData):
        candidates.append(db)
    elif isinstance(db, type) and issubclass(db, DeclarativeBase):
        candidates.append(db.metadata)
    elif db is not None and hasattr(db, "metadatas"):  # a Flask-SQLAlchemy instance
        candidates.extend(db.metadatas.values())
    candidates.append(tenant_model.__table__.metadata)  # type: ignore[attr-defined]
    if domain_model is not None:
        candidates.append(domain_model.__table__.metadata)  # type: ignore[attr-defined]
    for md in candidates:
        if all(md is not o for o in out):
            out.append(md)
    return out


class QuartTenants(TenancyDoor):
    """Schema-per-tenant multi-tenancy for a Quart app, on an asyncpg ``AsyncEngine``.

    ``tenancy = QuartTenants(app, tenant_model=Tenant, domain_model=Domain)`` (models on
    :mod:`flask_tenants.declarative`), or the factory form ``QuartTenants(...)`` then
    ``tenancy.init_app(app)``. The database is ``TENANTS_DATABASE_URL`` (else
    ``SQLALCHEMY_DATABASE_URI``; a plain ``postgresql://`` URL uses asyncpg) with
    ``TENANTS_ENGINE_OPTIONS``, or ``engine=create_async_engine(...)``. ``db`` may name the
    declarative base (or ``MetaData``) holding the tenant-specific models when it is not the
    tenant model's. ``session_options`` go to ``async_sessionmaker`` (``expire_on_commit`` is
    False by default).

    In a request: ``g.tenant`` (the tenant's name, ``'public'`` on public hosts) and
    ``g.db_session`` (an ``AsyncSession`` in that schema, closed at the end of the request).
    """

    blueprint_class = Blueprint
    app: Quart | None

    def __init__(
        self,
        app: Quart | None = None,
        tenant_model: type | None = None,
        domain_model: type | None = None,
        db: Any = None,
        tenant_url_prefix: str | None = None,
        non_tenant_subdomains: Iterable[str] | None = None,
        *,
        engine: AsyncEngine | None = None,
        session_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(
            app,
            tenant_model,
            domain_model,
            db,
            tenant_url_prefix,
            non_tenant_subdomains,
            engine=engine,
            **settings,
        )
        self.session_options = dict(session_options or {})
        self._owns_engine: dict[int, AsyncEngine] = {}
        self._inflight: dict[tuple[int, int, str], asyncio.Future[Any]] = {}
        self._apps: list[Quart] = []

    # -- setup ----------------------------------------------------------------------------
    def init(
        self,
        app: Quart | None = None,
        tenant_model: type | None = None,
        domain_model: type | None = None,
    ) -> QuartTenants:
        """0.5 API: initialise on ``app`` (or the app given to the constructor)."""
        self.app = app or self.app
        self.tenant_model = tenant_model or self.tenant_model
        self.domain_model = domain_model or self.domain_model
        if self.app is None:
            raise ConfigurationError("QuartTenants.init() needs the Quart app: init(app).")
        self.init_app(self.app)
        return self

    def init_app(self, app: Quart) -> None:
        """Install tenancy on ``app``: request hooks, AsyncSession, schema hook, URL routing."""
        self.check_not_initialised(app)
        pending = app.extensions.pop(PENDING_KEY, (None, None, None))
        db = self.db if self.db is not None else pending[2]
        registries = [Base.registry]
        if isinstance(db, type) and issubclass(db, DeclarativeBase):
            registries.insert(0, db.registry)
        tenant_model = self.require_tenant_model(
            self.tenant_model or pending[0] or find_model(registries, TenantMixin)
        )
        domain_model = self.domain_model or pending[1] or find_model(registries, DomainMixin)
        settings = self.read_settings(app.config)
        state = self.build_state(
            settings, tenant_model, domain_model, _metadatas(db, tenant_model, domain_model)
        )
        engine = self.engine
        if engine is None:
            if not settings.database_url:
                raise ConfigurationError(
                    "No database: set TENANTS_DATABASE_URL (or SQLALCHEMY_DATABASE_URI), e.g. "
                    "'postgresql://user:password@host/db', or pass "
                    "engine=create_async_engine(...) to QuartTenants."
                )
            engine = create_tenancy_engine(settings.database_url, settings.engine_options)
            self._owns_engine[id(app)] = engine
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                "QuartTenants needs an AsyncEngine (sqlalchemy.ext.asyncio.create_async_engine); "
                "for a sync Engine use flask_tenants.FlaskTenants."
            )
        install(engine)
        state.engine = engine
        state.session_maker = create_session_maker(engine, self.session_options)
        state.is_async = True
        self.register_state(app, state)
        self._apps.append(app)

        app.before_request_funcs.setdefault(None, []).insert(0, self._before_request)
        app.teardown_request(self._teardown_request)
        app.before_websocket_funcs.setdefault(None, []).insert(0, self._before_websocket)
        app.teardown_websocket(self._teardown_request)
        app.asgi_app = TenantPathASGIMiddleware(app, app.asgi_app, self)  # type: ignore[method-assign,assignment]
        wrap_url_for(app, self)
        self._wrap_dispatch(app)
        app.after_serving(self._after_serving)

    async def _after_serving(self) -> None:
        engine = self._owns_engine.get(id(current_app._get_current_object()))  # type: ignore[attr-defined]
        if engine is not None:
            await engine.dispose()

    async def dispose(self) -> None:
        """Close the pooled connections of the engines this extension created."""
        for engine in self._owns_engine.values():
            await engine.dispose()

    # -- per-app access -------------------------------------------------------------------
    def _lifecycle_state(self) -> TenancyState:
        if has_app_context():
            return self.state_for(current_app)
        if self.app is not None:
            return self.state_for(self.app)
        if len(self._apps) == 1:  # factory style, one app: no need for an app context
            return self.state_for(self._apps[0])
        raise ConfigurationError(
            "No app context: run inside 'async with app.app_context():', or give the app to "
            "QuartTenants(app, ...)."
        )

    # -- resolution -----------------------------------------------------------------------
    async def resolve(
        self, host: str | None, state: TenancyState | None = None, identified: Any = None
    ) -> Resolution:
        """The tenant of ``host``: cached, else one query on the async engine (concurrent
        requests for the same uncached host share it). Raises the 404/403 errors."""
        st = state or self._lifecycle_state()
        resolver = st.resolver
        if resolver.check_due():
            await self._check_fingerprint(st)
        res, lookup = resolver.begin(host, identified)
        if res is not None:
            return res
        assert lookup is not None
        generation = resolver.generation
        row = await self._lookup(st, lookup)
        return resolver.finish(lookup, row, host, generation)

    @staticmethod
    async def _check_fingerprint(st: TenancyState) -> None:
        with st.resolver.fingerprint_check() as query:
            async with st.engine.connect() as conn:
                row = (await conn.execute(query)).one()
        st.resolver.checked(row)

    async def _lookup(self, st: TenancyState, host: str) -> Any:
        key = (id(asyncio.get_running_loop()), id(st), host)
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._query(st, host))
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: self._forget(key, f))
        return await asyncio.shield(fut)

    def _forget(self, key: tuple[int, int, str], fut: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        if not fut.cancelled():
            fut.exception()  # retrieved: a waiter that went away must not leave it unlogged

    @staticmethod
    async def _query(st: TenancyState, host: str) -> Any:
        token = _set(None)  # the lookup reads shared tables, whatever context we are in
        try:
            async with st.engine.connect() as conn:
                return (await conn.execute(st.resolver.lookup_query(host))).first()
        finally:
            _reset(token)

    # -- request hooks ----------------------------------------------------------------------
    async def _bind(self, req: Any) -> None:
        scope = req.scope
        if scope.get(GONE_KEY):
            raise asyncio.CancelledError()  # the client went away before the handler started
        # one context-variable lookup per proxy instead of one per attribute access
        gobj: Any = g._get_current_object()  # type: ignore[attr-defined]
        state = self.state_for(current_app._get_current_object())  # type: ignore[attr-defined]
        res = await self.resolve(req.host, state, scope.get(IDENTIFIED_KEY))
        binding = self.request_binding(state, res, req.endpoint)
        if scope.get(GONE_KEY):
            raise asyncio.CancelledError()
        session = pin_async_session(state.session_maker(), binding)
        gobj.tenant = binding.name
        gobj.db_session = session
        setattr(gobj, _REQUEST, (session, _set(binding), commit_counter.set([0]), scope))
        scope[SESSION_KEY] = (session, asyncio.current_task())

    async def _before_request(self) -> None:
        await self._bind(request._get_current_object())  # type: ignore[attr-defined]

    async def _before_websocket(self) -> None:
        await self._bind(websocket._get_current_object())  # type: ignore[attr-defined]

    async def _teardown_request(self, exc: BaseException | None = None) -> None:
        record = g.pop(_REQUEST, None)
        if record is None:
            return
        session, token, commits, scope = record
        scope.pop(SESSION_KEY, None)  # closed here: the ASGI backstop has nothing to do
        try:
            await close_session(session)
        finally:
            _reset_quietly(commit_counter, commits)
            _reset(token)

    def _wrap_dispatch(self, app: Quart) -> None:
        original = app.dispatch_request

        async def dispatch_request(request_context: Any = None) -> Any:
            try:
                return await original(request_context)
            except Exception as exc:
                if not is_stale_statement_error(exc):
                    raise
                return await self._retry_stale(app, original, request_context, exc)

        app.dispatch_request = dispatch_request  # type: ignore[method-assign]

    async def _retry_stale(
        self, app: Quart, dispatch: Callable[..., Any], request_context: Any, exc: Exception
    ) -> Any:
        tenant = g.get("tenant")
        counter = commit_counter.get()
        committed = counter is not None and counter[0] > 0
        enabled = bool(app.config.get("TENANTS_RETRY_STALE_STATEMENTS", True))
        if committed or not enabled:
            log.warning(
                "flask-tenants: stale prepared statement in tenant %r (tables differ in shape "
                "between tenants); not retried because %s",
                tenant,
                "the request had already committed" if committed else "retries are off",
            )
            raise StaleStatementError(tenant) from exc
        log.info("flask-tenants: stale prepared statement in tenant %r, retrying once", tenant)
        record = g.get(_REQUEST)
        if record is not None:
            await record[0].rollback()
        try:
            return await dispatch(request_context)
        except Exception as again:
            if is_stale_statement_error(again):
                raise StaleStatementError(tenant) from again
            raise

    # -- sessions ---------------------------------------------------------------------------
    def new_session(self, **kw: Any) -> AsyncSession:
        """A new AsyncSession on the tenancy's database (caller closes it)."""
        session: AsyncSession = self._lifecycle_state().session_maker(**kw)
        return session

    def with_db(self, tenant: str | None = None) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with tenancy.with_db("acme") as session:`` -- works without an app context."""
        return session_in(self._lifecycle_state(), tenant)

    async def run_in_tenant(self, tenant: str | None, fn: Callable[[AsyncSession], Any]) -> Any:
        """``await fn(session)`` in ``tenant``'s schema, committed; retried once on a stale
        prepared statement (see :mod:`flask_tenants.aio.session`)."""
        from .session import run_in_tenant

        return await run_in_tenant(tenant, fn, state=self._lifecycle_state())

    # -- lifecycle API ----------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run the core lifecycle function ``fn(session, state, ...)`` in its own transaction
        (``run_sync``), commit, and retry once on a stale prepared statement."""
        state = self._lifecycle_state()

        def work(session: Session) -> T:
            return fn(session, state, *args, **kw)

        for attempt in (1, 2):
            session: AsyncSession = state.session_maker()
            token = _set(None)
            try:
                result = await session.run_sync(work)
                await session.commit()
                return result
            except Exception as exc:
                if attempt == 1 and is_stale_statement_error(exc):
                    continue
                raise
            finally:
                try:
                    await close_session(session)
                finally:
                    _reset(token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_tenant(self, name: str, domains: Iterable[str] = (), **attrs: Any) -> Any:
        """Create tenant ``name`` (row, schema, tables, domains) in one transaction."""
        return await self._run(lifecycle.create_tenant, name, list(domains), **attrs)

    async def rename_tenant(self, old: str, new: str) -> Any:
        """Rename a tenant: its row, schema and domains, atomically."""
        return await self._run(lifecycle.rename_tenant, old, new)

    async def deactivate_tenant(self, name: str) -> Any:
        """Deactivate a tenant: its hosts answer 403 (needs a ``deactivated`` column)."""
        return await self._run(lifecycle.set_tenant_active, name, False)

    async def activate_tenant(self, name: str) -> Any:
        """Re-activate a deactivated tenant."""
        return await self._run(lifecycle.set_tenant_active, name, True)

    async def delete_tenant(self, name: str) -> None:
        """Delete a tenant: domains, row and schema, atomically."""
        await self._run(lifecycle.delete_tenant, name)

    async def add_domain(self, name: str, domain: str, primary: bool = False) -> Any:
        """Give tenant ``name`` another host name."""
        return await self._run(lifecycle.add_domain, name, domain, primary)

    async def remove_domain(self, domain: str) -> None:
        """Remove a host name from its tenant."""
        await self._run(lifecycle.remove_domain, domain)

    async def set_primary_domain(self, domain: str) -> Any:
        """Make ``domain`` its tenant's primary domain."""
        return await self._run(lifecycle.set_primary_domain, domain)

    async def get_tenant(self, name: str) -> Any:
        """The tenant called ``name`` (detached), or TenantNotFoundError."""
        return await self._run(lifecycle.get_tenant, name)

    def current_binding(self) -> TenantBinding | None:
        return current_binding()


def _reset_quietly(var: ContextVar[Any], token: Any) -> None:
    try:
        var.reset(token)
    except ValueError:
        var.set(None)


#: The same name as the sync door's extension: ``from flask_tenants.aio import FlaskTenants``.
FlaskTenants = QuartTenants


class MultiTenancyMiddleware(QuartTenants):
    """0.4 API: ``MultiTenancyMiddleware(app, db=None, tenant_url_prefix='/_tenant')`` installs
    the same request handling as :func:`create_tenancy`."""

    def __init__(
        self,
        app: Quart,
        db: Any = None,
        tenant_url_prefix: str | None = None,
        non_tenant_subdomains: Iterable[str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(
            app,
            db=db,
            tenant_url_prefix=tenant_url_prefix,
            non_tenant_subdomains=non_tenant_subdomains,
            **kw,
        )
        self.init_app(app)


def create_tenancy(
    app: Quart,
    db: Any = None,
    non_tenant_subdomains: Iterable[str] | None = None,
    tenant_url_prefix: str | None = None,
    **kw: Any,
) -> MultiTenancyMiddleware:
    """0.4 API: set up tenancy on ``app`` after :func:`init_app`; returns the extension, whose
    ``create_public_blueprint`` / ``create_tenant_blueprint`` make the scoped blueprints."""
    return MultiTenancyMiddleware(
        app,
        db,
        tenant_url_prefix=tenant_url_prefix,
        non_tenant_subdomains=non_tenant_subdomains,
        **kw,
    )
