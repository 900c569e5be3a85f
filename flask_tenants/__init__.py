"""flask-tenants: schema-per-tenant multi-tenancy for Flask and Quart on PostgreSQL."""

from __future__ import annotations

from . import privileges as _privileges  # noqa: F401 - registers the owner-role flush hook
from .context import current_tenant, tenant_context
from .exceptions import (
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
from .extension import FlaskTenants, MultiTenancyMiddleware, create_tenancy, init_app
from .fleet import for_each_tenant, for_each_tenant_async
from .models import (
    TENANT_SPECIFIC,
    BaseDomain,
    BaseTenant,
    BaseTenantModel,
    DomainMixin,
    TenantMixin,
    TenantModelMixin,
    db,
)
from .naming import validate_tenant_name
from .signals import (
    tenant_activated,
    tenant_created,
    tenant_deactivated,
    tenant_deleted,
    tenant_migrated,
    tenant_renamed,
    tenant_resolved,
)
from .strict import allow_cross_tenant
from .utils import with_db

__version__ = "1.0.0.dev0"

__all__ = [
    "FlaskTenants",
    "MultiTenancyMiddleware",
    "create_tenancy",
    "init_app",
    "db",
    "BaseTenant",
    "BaseDomain",
    "BaseTenantModel",
    "TenantMixin",
    "DomainMixin",
    "TenantModelMixin",
    "TENANT_SPECIFIC",
    "with_db",
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
]
