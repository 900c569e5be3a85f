"""The sync door: the Flask extension.

One implementation, :class:`FlaskTenants`; the original flask-tenants entry points are thin
wrappers around it: :func:`init_app` (0.4: registers the models and binds ``db``),
:func:`create_tenancy` and :class:`MultiTenancyMiddleware` (0.4: install the request handling),
and ``FlaskTenants(app, ...).init()`` (0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, current_app, g, has_app_context, has_request_context, request
from flask.signals import appcontext_pushed
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from . import lifecycle
from ._door import TenancyDoor, find_model
from ._frameworks import EXTENSION_KEY
from .context import TenantBinding, _reset, _set, current_binding
from .exceptions import ConfigurationError
from .identification import IDENTIFIED_KEY
from .isolation import install, pin_session
from .migrations import attach_migrations, duplicates_primary_key
from .models import DomainMixin, TenantMixin, is_tenant_table
from .models import db as library_db
from .resolution import Resolution
from .routing import TENANT_HOST, TenantPathMiddleware, strip_prefix
from .state import TenancyState

__all__ = ["FlaskTenants", "MultiTenancyMiddleware", "create_tenancy", "init_app"]

PENDING_KEY = "flask_tenants.pending"
_TOKEN = "_flask_tenants_token"
T = TypeVar("T")


def _fsa_bound(app: Flask, fsa: SQLAlchemy) -> bool:
    with app.app_context():
        try:
            fsa.engines  # noqa: B018 - raises when fsa is not registered on this app
        except RuntimeError:
            return False
    return True


def _bind_fsa(app: Flask, fsa: SQLAlchemy) -> None:
    """Register ``fsa`` on ``app`` unless it already is, beside another instance if need be."""
    if app.extensions.get("sqlalchemy") is fsa or _fsa_bound(app, fsa):
        return
    if not app.config.get("SQLALCHEMY_DATABASE_URI") and not app.config.get("SQLALCHEMY_BINDS"):
        raise ConfigurationError(
            "Set app.config['SQLALCHEMY_DATABASE_URI'] (e.g. 'postgresql://user:password@host/db') "
            "before initialising flask-tenants."
        )
    other = app.extensions.pop("sqlalchemy", None)
    try:
        fsa.init_app(app)
    finally:
        if other is not None:
            # The original README's "Basic Setup" makes its own SQLAlchemy(app) while the models
            # live on flask_tenants.db: both stay usable, the app's own one stays registered.
            app.extensions["sqlalchemy"] = other


def _fsa_instances(*candidates: Any) -> list[SQLAlchemy]:
    out: list[SQLAlchemy] = []
    for c in candidates:
        if isinstance(c, SQLAlchemy) and all(c is not o for o in out):
            out.append(c)
    return out


def _find_model(fsas: list[SQLAlchemy], mixin: type) -> type | None:
    return find_model([fsa.Model.registry for fsa in fsas], mixin)  # type: ignore[attr-defined]


def init_app(
    app: Flask, tenant_model: type | None = None, domain_model: type | None = None, db: Any = None
) -> None:
    """Register the tenancy models on ``app`` and bind ``flask_tenants.db`` to it (0.4 API).

    Follow with :func:`create_tenancy` (or use :class:`FlaskTenants`, which does both).
    """
    if EXTENSION_KEY in app.extensions or PENDING_KEY in app.extensions:
        raise ConfigurationError(
            "flask_tenants.init_app() was already called on this app. Call it once per app; "
            "create_tenancy(app, db) then completes the setup."
        )
    fsa = db if isinstance(db, SQLAlchemy) else library_db
    _bind_fsa(app, fsa)
    app.extensions[PENDING_KEY] = (tenant_model, domain_model, fsa)


class FlaskTenants(TenancyDoor):
    """Schema-per-tenant multi-tenancy for a Flask app.

    ``FlaskTenants(app, tenant_model=Tenant, domain_model=Domain, db=db).init()`` (0.5 style), or
    the factory form ``tenants = FlaskTenants(tenant_model=Tenant, domain_model=Domain, db=db)``
    then ``tenants.init_app(app)``. Settings come from ``app.config`` (``TENANTS_*``); keyword
    arguments given here win. The constructor's arguments are those of
    :class:`~flask_tenants._door.TenancyDoor`, shared with the Quart door.
    """

    blueprint_class = Blueprint
    app: Flask | None
    engine: Engine | None

    # -- setup ----------------------------------------------------------------------------
    def init(
        self,
        app: Flask | None = None,
        tenant_model: type | None = None,
        domain_model: type | None = None,
    ) -> FlaskTenants:
        """0.5 API: initialise on ``app`` (or the app given to the constructor)."""
        self.app = app or self.app
        self.tenant_model = tenant_model or self.tenant_model
        self.domain_model = domain_model or self.domain_model
        if self.app is None:
            raise ConfigurationError("FlaskTenants.init() needs the Flask app: init(app).")
        self.init_app(self.app)
        return self

    def init_app(self, app: Flask) -> None:
        """Install tenancy on ``app``: request hooks, session, schema hook, URL routing, CLI."""
        self.check_not_initialised(app)
        pending = app.extensions.pop(PENDING_KEY, (None, None, None))
        tenant_model = self.tenant_model or pending[0]
        domain_model = self.domain_model or pending[1]
        fsas = _fsa_instances(self.db, pending[2], library_db, app.extensions.get("sqlalchemy"))
        if tenant_model is None:
            tenant_model = _find_model(fsas, TenantMixin)
        if domain_model is None:
            domain_model = _find_model(fsas, DomainMixin)
        tenant_model = self.require_tenant_model(tenant_model)
        settings = self.read_settings(app.config)
        md = tenant_model.__table__.metadata  # type: ignore[attr-defined]
        owner = next((f for f in fsas if md in f.metadatas.values()), None)
        state = self.build_state(
            settings,
            tenant_model,
            domain_model,
            list(owner.metadatas.values()) if owner is not None else [md],
        )
        self._wire_database(app, state, owner, fsas)
        self.register_state(app, state)

        funcs = app.before_request_funcs.setdefault(None, [])
        funcs.insert(0, self._before_request)
        app.teardown_request(self._teardown_request)
        app.wsgi_app = TenantPathMiddleware(app, app.wsgi_app, self)  # type: ignore[method-assign]
        self._wrap_url_for(app)
        appcontext_pushed.connect(self._configure_migrate, app, weak=False)
        from .cli import register_cli

        register_cli(app)

    def _wire_database(
        self, app: Flask, state: TenancyState, owner: SQLAlchemy | None, fsas: list[SQLAlchemy]
    ) -> None:
        engines: list[Engine] = []
        if owner is not None:
            _bind_fsa(app, owner)
            fsa = owner
            state.fsa = fsa
            state.scoped = fsa.session
            state.session_maker = fsa.session.session_factory
            with app.app_context():
                for f in fsas:
                    if _fsa_bound(app, f):
                        engines.extend(f.engines.values())
                state.engine = fsa.engine
        else:
            engine = self.engine
            if engine is None:
                if not state.settings.database_url:
                    raise ConfigurationError(
                        "No database: set TENANTS_DATABASE_URL (or SQLALCHEMY_DATABASE_URI), or "
                        "pass engine=create_engine(...) to FlaskTenants."
                    )
                engine = create_engine(state.settings.database_url, **state.settings.engine_options)
            maker = sessionmaker(bind=engine)
            state.engine = engine
            state.session_maker = maker
            state.scoped = scoped_session(maker, scopefunc=_app_ctx_id)
            state.fsa = None
            app.teardown_appcontext(lambda exc: state.scoped.remove())
            engines.append(engine)
        for e in engines:
            install(e)

    # -- per-app access -------------------------------------------------------------------
    @contextmanager
    def _app_context(self) -> Iterator[TenancyState]:
        if has_app_context():
            yield self.state_for(current_app)
        elif self.app is not None:
            with self.app.app_context():
                yield self.state_for(self.app)
        else:
            raise ConfigurationError("No app context: run inside 'with app.app_context():'.")

    # -- resolution -----------------------------------------------------------------------
    def resolve(
        self, host: str | None, state: TenancyState | None = None, identified: Any = None
    ) -> Resolution:
        """The tenant of ``host``: cached, else one query. Raises the 404/403 errors."""
        st = state or self.state
        resolver = st.resolver
        if resolver.check_due():
            self._check_fingerprint(st)
        res, lookup = resolver.begin(host, identified)
        if res is not None:
            return res
        assert lookup is not None
        generation = resolver.generation
        token = _set(None)  # the lookup reads shared tables, whatever context we are in
        try:
            with st.engine.connect() as conn:
                row = conn.execute(resolver.lookup_query(lookup)).first()
        finally:
            _reset(token)
        return resolver.finish(lookup, row, host, generation)

    @staticmethod
    def _check_fingerprint(st: TenancyState) -> None:
        with st.resolver.fingerprint_check() as query, st.engine.connect() as conn:
            row = conn.execute(query).one()
        st.resolver.checked(row)

    # -- request hooks ----------------------------------------------------------------------
    def _before_request(self) -> None:
        # one context-variable lookup per proxy instead of one per attribute access
        req: Any = _current_request()
        gobj: Any = _current_g()
        state = self.state_for(_current_app())
        res = self.resolve(req.host, state, req.environ.get(IDENTIFIED_KEY))
        binding = self.request_binding(state, res, req.endpoint)
        gobj.tenant = binding.name
        session = state.scoped
        # the scoped session travels with the token: the teardown needs no state lookup
        setattr(gobj, _TOKEN, (_set(binding), session))
        current = session()
        if current.in_transaction():
            # An app context that outlives requests (tests that push one) keeps its session:
            # a transaction begun before this request runs in another search_path, so it
            # cannot be carried into this tenant's request.
            current.close()
        pin_session(current, binding)
        gobj.db_session = session

    def _teardown_request(self, exc: BaseException | None = None) -> None:
        pending = g.pop(_TOKEN, None)
        if pending is not None:
            token, scoped = pending
            _reset(token)
            # The request's session ends with the request, also when the app context outlives
            # it; otherwise its open transaction (in the tenant's schema) and its tenant pin
            # would serve the code that runs next in that app context.
            session = _take_session(scoped) if scoped is not None else None
            if session is not None:
                try:
                    session.close()
                except DBAPIError as exc:
                    # the server closed the connection (killed, restarted): there is nothing
                    # left to roll back, and the request's answer stands
                    if not exc.connection_invalidated:
                        raise

    def _wrap_url_for(self, app: Flask) -> None:
        original = app.url_for

        def url_for(endpoint: str, **values: Any) -> str:
            url = original(endpoint, **values)
            if has_request_context() and request.environ.get(TENANT_HOST):
                return strip_prefix(
                    url, self.state_for(app).settings.url_prefix, request.script_root
                )
            return url

        app.url_for = url_for  # type: ignore[method-assign]
        app.jinja_env.globals["url_for"] = url_for

    def _configure_migrate(self, app: Flask, **kw: Any) -> None:
        migrate = app.extensions.get("migrate")
        if getattr(app, "_got_first_request", False):
            # Extensions are set up before an app serves requests (Flask refuses most setup
            # after the first one): Migrate(app) has come by now or will not come. Stop
            # listening, so that app contexts pushed for requests pay nothing for this.
            appcontext_pushed.disconnect(self._configure_migrate, app)
        if migrate is None:
            return
        state = app.extensions.get(EXTENSION_KEY)
        if state is not None and state.migrations is None:  # Migrate(app) came after us
            attach_migrations(app, state)
        args = migrate.configure_args
        user = args.get("include_object")
        if getattr(user, "_flask_tenants", False):
            return

        def include_object(
            obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any
        ) -> bool:
            if type_ == "table" and not reflected and is_tenant_table(obj):
                return False
            if type_ == "table" and compare_to is not None and is_tenant_table(compare_to):
                return False
            if type_ == "unique_constraint" and duplicates_primary_key(obj):
                return False  # PostgreSQL drops it at CREATE TABLE: autogen would re-add it forever
            return True if user is None else bool(user(obj, name, type_, reflected, compare_to))

        include_object._flask_tenants = True  # type: ignore[attr-defined]
        args["include_object"] = include_object

    # -- sessions ---------------------------------------------------------------------------
    def new_session(self, **kw: Any) -> Session:
        """A new Session on the tenancy's database (caller closes it)."""
        session: Session = self.state.session_maker(**kw)
        return session

    @contextmanager
    def with_db(self, tenant: str | None = None) -> Iterator[Session]:
        """A Session in ``tenant``'s schema (default: the current tenant), closed afterwards."""
        from .utils import with_db

        with with_db(tenant) as session:
            yield session

    # -- lifecycle API ----------------------------------------------------------------------
    def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        with self._app_context() as state:
            session: Session = state.session_maker(expire_on_commit=False)
            token = _set(None)
            try:
                result = fn(session, state, *args, **kw)
                session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
                _reset(token)

    def create_tenant(self, name: str, domains: Iterable[str] = (), **attrs: Any) -> Any:
        """Create tenant ``name`` (row, schema, tables, domains) in one transaction."""
        return self._run(lifecycle.create_tenant, name, list(domains), **attrs)

    def rename_tenant(self, old: str, new: str) -> Any:
        """Rename a tenant: its row, schema and domains, atomically."""
        return self._run(lifecycle.rename_tenant, old, new)

    def deactivate_tenant(self, name: str) -> Any:
        """Deactivate a tenant: its hosts answer 403 (needs a ``deactivated`` column)."""
        return self._run(lifecycle.set_tenant_active, name, False)

    def activate_tenant(self, name: str) -> Any:
        """Re-activate a deactivated tenant."""
        return self._run(lifecycle.set_tenant_active, name, True)

    def delete_tenant(self, name: str) -> None:
        """Delete a tenant: domains, row and schema, atomically."""
        self._run(lifecycle.delete_tenant, name)

    def add_domain(self, name: str, domain: str, primary: bool = False) -> Any:
        """Give tenant ``name`` another host name."""
        return self._run(lifecycle.add_domain, name, domain, primary)

    def remove_domain(self, domain: str) -> None:
        """Remove a host name from its tenant."""
        self._run(lifecycle.remove_domain, domain)

    def set_primary_domain(self, domain: str) -> Any:
        """Make ``domain`` its tenant's primary domain."""
        return self._run(lifecycle.set_primary_domain, domain)

    def get_tenant(self, name: str) -> Any:
        """The tenant called ``name`` (detached), or TenantNotFoundError."""
        return self._run(lifecycle.get_tenant, name)

    def current_binding(self) -> TenantBinding | None:
        return current_binding()


# the proxies' own accessors, bound once: one context-variable lookup per object per request
_current_request: Callable[[], Any] = cast(Any, request)._get_current_object
_current_g: Callable[[], Any] = cast(Any, g)._get_current_object
_current_app: Callable[[], Flask] = cast(Any, current_app)._get_current_object


def _take_session(scoped: scoped_session[Any]) -> Session | None:
    """Take the current session out of ``scoped``'s registry (``remove()`` without closing),
    asking the scope function once."""
    registry: Any = scoped.registry
    scopefunc = getattr(registry, "scopefunc", None)
    if scopefunc is None:  # a thread-local registry
        if not registry.has():
            return None
        session: Session = registry()
        registry.clear()
        return session
    taken: Session | None = registry.registry.pop(scopefunc(), None)
    return taken


def _app_ctx_id() -> int:
    from flask.globals import app_ctx

    return id(app_ctx._get_current_object())  # type: ignore[attr-defined]


class MultiTenancyMiddleware(FlaskTenants):
    """0.4 API: ``MultiTenancyMiddleware(app, db, tenant_url_prefix='/_tenant')`` installs the
    same request handling as :func:`create_tenancy`."""

    def __init__(
        self,
        app: Flask,
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
    app: Flask,
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
