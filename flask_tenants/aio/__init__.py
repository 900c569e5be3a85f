"""flask-tenants for Quart (and other asyncio code): the same names as :mod:`flask_tenants`.

::

    from flask_tenants.aio import QuartTenants, BaseTenant, BaseDomain, BaseTenantModel, with_db

Moving an app from Flask to Quart changes imports, not concepts: ``FlaskTenants`` (an alias of
:class:`QuartTenants`), ``init_app``/``create_tenancy``/``MultiTenancyMiddleware``, the
blueprint factories, ``with_db`` (``async with``), ``tenant_context``, the models (on SQLAlchemy's
own ``DeclarativeBase``: Quart apps cannot use Flask-SQLAlchemy) and the exceptions, which are the
core's. Only what is about awaiting is new: the extension's lifecycle methods are coroutines and
``g.db_session`` is an ``AsyncSession`` on an asyncpg engine.
"""

from __future__ import annotations

from ..context import current_tenant, tenant_context
from ..declarative import Base, BaseDomain, BaseTenant, BaseTenantModel
from ..exceptions import (
    ConfigurationError,
    DomainError,
    FlaskTenantsError,
    InvalidTenantNameError,
    SchemaCreationError,
    SchemaDropError,
    SchemaRenameError,
    TableCreationError,
    TenantActivationError,
    TenantContextError,
    TenantExistsError,
    TenantIsolationError,
    TenantNotFoundError,
    TenantSchemaMissingError,
)
from ..fleet import for_each_tenant_async
from ..fleet import for_each_tenant_async as for_each_tenant  # the async form, same name
from ..models import TENANT_SPECIFIC, DomainMixin, TenantMixin, TenantModelMixin
from ..naming import validate_tenant_name
from ..signals import (
    tenant_activated,
    tenant_created,
    tenant_deactivated,
    tenant_deleted,
    tenant_migrated,
    tenant_renamed,
    tenant_resolved,
)
from ..strict import allow_cross_tenant
from .engine import async_database_url, pgbouncer_connect_args
from .extension import FlaskTenants, MultiTenancyMiddleware, QuartTenants, create_tenancy, init_app
from .session import StaleStatementError, run_in_tenant, with_db

__all__ = [
    "QuartTenants",
    "FlaskTenants",
    "MultiTenancyMiddleware",
    "create_tenancy",
    "init_app",
    "Base",
    "BaseTenant",
    "BaseDomain",
    "BaseTenantModel",
    "TenantMixin",
    "DomainMixin",
    "TenantModelMixin",
    "TENANT_SPECIFIC",
    "with_db",
    "run_in_tenant",
    "tenant_context",
    "current_tenant",
    "allow_cross_tenant",
    "for_each_tenant",
    "for_each_tenant_async",
    "tenant_created",
    "tenant_renamed",
    "tenant_deleted",
    "tenant_activated",
    "tenant_deactivated",
    "tenant_migrated",
    "tenant_resolved",
    "validate_tenant_name",
    "async_database_url",
    "pgbouncer_connect_args",
    "FlaskTenantsError",
    "ConfigurationError",
    "DomainError",
    "InvalidTenantNameError",
    "TenantNotFoundError",
    "TenantActivationError",
    "TenantSchemaMissingError",
    "TenantIsolationError",
    "TenantContextError",
    "TenantExistsError",
    "SchemaCreationError",
    "TableCreationError",
    "SchemaRenameError",
    "SchemaDropError",
    "StaleStatementError",
]
