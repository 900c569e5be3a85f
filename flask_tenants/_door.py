"""What the Flask door and the Quart door share: one base class for both extensions.

It holds everything that is not about sync vs async I/O: the constructor arguments, reading the
settings, finding the models, building and registering the per-app state, blueprint scopes and
the decision which binding (tenant or public schema) a request gets. The doors add only what
differs: the request hooks, the session, the path rewriting (WSGI vs ASGI) and the lifecycle
methods (plain calls vs ``await``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from werkzeug.exceptions import NotFound

from . import lifecycle
from ._frameworks import EXTENSION_KEY, current_app_or_none
from .config import DEFAULT_URL_PREFIX, TenancySettings
from .context import TenantBinding
from .exceptions import ConfigurationError
from .migrations import attach_migrations
from .resolution import Resolution
from .signals import send_resolved, tenant_resolved
from .state import TenancyState
from .strict import install_for_state

__all__ = ["TenancyDoor", "find_model"]


def find_model(registries: Iterable[Any], mixin: type) -> type | None:
    """The one most-derived mapped class deriving from ``mixin`` in ``registries``, else None."""
    found: list[type] = []
    for registry in registries:
        for mapper in registry.mappers:
            if issubclass(mapper.class_, mixin) and mapper.class_ not in found:
                found.append(mapper.class_)
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    return leaves[0] if len(leaves) == 1 else None


class TenancyDoor:
    """Base of :class:`flask_tenants.FlaskTenants` and :class:`flask_tenants.aio.QuartTenants`."""

    #: The framework's Blueprint class (``flask.Blueprint`` / ``quart.Blueprint``).
    blueprint_class: ClassVar[Any]

    def __init__(
        self,
        app: Any = None,
        tenant_model: type | None = None,
        domain_model: type | None = None,
        db: Any = None,
        tenant_url_prefix: str | None = None,
        non_tenant_subdomains: Iterable[str] | None = None,
        *,
        engine: Any = None,
        **settings: Any,
    ) -> None:
        self.app = app
        self.tenant_model = tenant_model
        self.domain_model = domain_model
        self.db = db
        self.engine = engine
        self.tenant_url_prefix = tenant_url_prefix
        self.non_tenant_subdomains = (
            tuple(non_tenant_subdomains) if non_tenant_subdomains is not None else None
        )
        self.setting_overrides = settings
        self._tenant_bps: set[str] = set()
        self._public_bps: set[str] = set()
        self._scope_cache: dict[str, str | None] = {}

    # -- setup ----------------------------------------------------------------------------
    @staticmethod
    def check_not_initialised(app: Any) -> None:
        """Refuse a second initialisation of the same app, saying what to do instead."""
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                "flask-tenants is already initialised on this app: create_tenancy(), "
                "MultiTenancyMiddleware() and FlaskTenants.init()/init_app() each do the whole "
                "setup, so call exactly one of them once per app."
            )

    def read_settings(self, config: Any) -> TenancySettings:
        """The app's ``TENANTS_*`` settings; arguments given to the constructor win."""
        return TenancySettings.from_mapping(
            config,
            url_prefix=self.tenant_url_prefix,
            non_tenant_subdomains=self.non_tenant_subdomains,
            **self.setting_overrides,
        )

    @staticmethod
    def require_tenant_model(tenant_model: type | None) -> type:
        if tenant_model is None:
            raise ConfigurationError(
                "No tenant model: pass tenant_model=Tenant (and domain_model=Domain) to "
                "flask_tenants.init_app(app, ...) or FlaskTenants(...)."
            )
        return tenant_model

    def build_state(
        self,
        settings: TenancySettings,
        tenant_model: type,
        domain_model: type | None,
        metadatas: list[Any] | None = None,
    ) -> TenancyState:
        """A new :class:`TenancyState` owned by this extension (not registered yet)."""
        state = TenancyState(settings, tenant_model, domain_model, metadatas)
        state.extension = self
        return state

    @staticmethod
    def register_state(app: Any, state: TenancyState) -> None:
        """Attach the schema lifecycle to the models and publish ``state`` on ``app``."""
        lifecycle.register_model_events(state.tenant_model, state.domain_model)
        app.extensions[EXTENSION_KEY] = state
        install_for_state(state, app)  # TENANTS_STRICT: flask_tenants/strict.py
        attach_migrations(app, state)
        from .cli import register_cli

        register_cli(app)  # 'flask tenants ...' / 'quart tenants ...' (flask_tenants/cli.py)

    # -- per-app access -------------------------------------------------------------------
    def state_for(self, app: Any) -> TenancyState:
        """The tenancy state of ``app``; ConfigurationError when it was not initialised."""
        try:
            return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
        except KeyError:
            raise ConfigurationError(
                "flask-tenants is not initialised on this app: call init_app(app) first."
            ) from None

    @property
    def state(self) -> TenancyState:
        """The tenancy state of the current app (or of the app given to the constructor)."""
        app = current_app_or_none()
        if app is not None:
            return self.state_for(app)
        if self.app is not None:
            return self.state_for(self.app)
        raise ConfigurationError("No app context: run inside 'with app.app_context():'.")

    # -- blueprints -----------------------------------------------------------------------
    @property
    def url_prefix(self) -> str:
        """The internal URL prefix of tenant blueprints (``TENANTS_URL_PREFIX``)."""
        if self.app is not None and EXTENSION_KEY in self.app.extensions:
            return self.state_for(self.app).settings.url_prefix
        return (self.tenant_url_prefix or DEFAULT_URL_PREFIX).rstrip("/")

    def create_tenant_blueprint(self, name: str, import_name: str | None = None, **kw: Any) -> Any:
        """A blueprint for tenant-scoped routes (blueprints registered inside it are too)."""
        kw.setdefault("url_prefix", self.url_prefix)
        bp = self.blueprint_class(name, import_name or __name__, **kw)
        self._tenant_bps.add(name)
        self._scope_cache.clear()
        return bp

    def create_public_blueprint(self, name: str, import_name: str | None = None, **kw: Any) -> Any:
        """A blueprint whose routes are served on public hosts only, from the public schema."""
        bp = self.blueprint_class(name, import_name or __name__, **kw)
        self._public_bps.add(name)
        self._scope_cache.clear()
        return bp

    def scope_of(self, endpoint: str | None) -> str | None:
        """'tenant', 'public' or None (neither: static files, app-level routes)."""
        if endpoint is None:
            return None
        try:
            return self._scope_cache[endpoint]
        except KeyError:
            pass
        scope: str | None = None
        if any(endpoint.startswith(n + ".") for n in self._tenant_bps):
            scope = "tenant"
        elif any(endpoint.startswith(n + ".") for n in self._public_bps):
            scope = "public"
        self._scope_cache[endpoint] = scope
        return scope

    # -- requests -------------------------------------------------------------------------
    def request_binding(
        self, state: TenancyState, res: Resolution, endpoint: str | None
    ) -> TenantBinding:
        """The binding a request for ``endpoint`` resolved to ``res`` runs under.

        Tenant routes requested on a public host answer 404 (never the public schema), and
        public routes requested for a tenant answer 404 too (never the tenant's schema): the
        path rewriting normally sees to the latter, but not when the host it saw differs from
        the one resolved here (a proxy middleware such as ProxyFix installed before us).
        """
        scope = self.scope_of(endpoint)
        if res.is_public:
            if scope == "tenant":
                raise NotFound()
            return state.public
        if scope == "public":
            raise NotFound()
        if tenant_resolved.receivers:  # the tenant_resolved signal (signals.py)
            send_resolved(res)
        return state.binding(res.tenant)
