"""Per-app tenancy state shared by both doors: settings, models, resolver, tenant tables."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import MetaData, Table

from ._frameworks import EXTENSION_KEY, current_app_or_none
from .config import TenancySettings
from .context import TenantBinding, binding_for, public_binding
from .exceptions import ConfigurationError
from .models import TENANT_SCHEMA_PLACEHOLDER, tenant_tables, unqualify_placeholder_tables
from .resolution import Resolver

__all__ = ["TenancyState", "current_state", "current_state_or_none", "state_for_model"]

_by_model: dict[type, TenancyState] = {}


class TenancyState:
    """Everything one app's tenancy needs that is not about sync vs async I/O."""

    def __init__(
        self,
        settings: TenancySettings,
        tenant_model: Any,
        domain_model: Any,
        metadatas: list[MetaData] | None = None,
    ) -> None:
        if not hasattr(tenant_model, "__table__"):
            raise ConfigurationError(
                f"tenant_model must be a mapped SQLAlchemy model class, got {tenant_model!r}"
            )
        if "name" not in tenant_model.__table__.c:
            raise ConfigurationError(
                f"{tenant_model.__name__} has no 'name' column: derive it from BaseTenant "
                "(or TenantMixin)."
            )
        self.settings = settings
        self.tenant_model = tenant_model
        self.domain_model = domain_model
        self.metadatas = metadatas or [tenant_model.__table__.metadata]
        self.resolver = Resolver(settings, tenant_model, domain_model)
        self.public = public_binding(settings.shared_schemas)
        self._bindings: dict[str, TenantBinding] = {}
        self._tables: tuple[int, list[Table]] | None = None
        self._lock = threading.Lock()
        # set by the door that owns this state
        self.extension: Any = None
        self.engine: Any = None
        self.session_maker: Any = None
        self.scoped: Any = None
        self.fsa: Any = None
        #: True when ``engine`` is an AsyncEngine and ``session_maker`` makes AsyncSessions.
        self.is_async = False
        #: The tenant migrations (flask_tenants.migrations.TenantMigrations), when configured.
        self.migrations: Any = None
        _by_model[tenant_model] = self
        self.tenant_tables  # noqa: B018 - placeholder-schema tables are unqualified from the start

    @property
    def has_deactivated(self) -> bool:
        return "deactivated" in self.tenant_model.__table__.c

    def binding(self, name: str | None) -> TenantBinding:
        """The (cached) binding for tenant ``name``; the public one for None/'public'."""
        if name is None or name == "public":
            return self.public
        b = self._bindings.get(name)
        if b is None:
            b = binding_for(name, self.settings.shared_schemas)
            if len(self._bindings) > 100_000:
                self._bindings.clear()
            self._bindings[name] = b
        return b

    @property
    def tenant_tables(self) -> list[Table]:
        """Tenant-specific tables of the models, in dependency order (recomputed if models grow)."""
        count = sum(len(md.tables) for md in self.metadatas)
        cached = self._tables
        if cached is None or cached[0] != count:
            cached = (count, tenant_tables(self.metadatas))
            unqualify_placeholder_tables(cached[1])
            self._tables = cached
        return cached[1]

    def tenant_heads(self) -> tuple[str, ...]:
        """Head revision(s) of the tenant migrations, stamped into new tenants; () without any."""
        return () if self.migrations is None else tuple(self.migrations.heads())

    @property
    def uses_placeholder_schema(self) -> bool:
        return any(t.schema == TENANT_SCHEMA_PLACEHOLDER for t in self.tenant_tables)


def state_for_model(model: type) -> TenancyState | None:
    """The most recently initialised tenancy using ``model`` as its tenant model."""
    for cls in model.__mro__:
        st = _by_model.get(cls)
        if st is not None:
            return st
    return None


def current_state_or_none() -> TenancyState | None:
    app = current_app_or_none()
    if app is None:
        return None
    return app.extensions.get(EXTENSION_KEY)  # type: ignore[no-any-return]


def current_state() -> TenancyState:
    st = current_state_or_none()
    if st is None:
        raise ConfigurationError(
            "flask-tenants is not initialised on the current app (or there is no app context). "
            "Call create_tenancy(app, db) / FlaskTenants(...).init_app(app) first, and run this "
            "inside 'with app.app_context():'."
        )
    return st
