"""The tenancy models: tenants, their domains, and the marker for tenant-specific tables.

The columns are defined once, as mixins that work on any SQLAlchemy declarative base. Two sets of
ready-made abstract bases are built from them:

* here, on the library's Flask-SQLAlchemy instance ``db`` (the original flask-tenants API):
  ``from flask_tenants.models import db, BaseTenant, BaseDomain, BaseTenantModel``;
* in :mod:`flask_tenants.declarative`, on a plain SQLAlchemy ``DeclarativeBase``, for Quart apps
  and for one models module shared by a Flask and a Quart app.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, MetaData, String, Table, event, func
from sqlalchemy.orm import Mapped, Mapper, mapped_column, validates

from .naming import normalize_domain, validate_tenant_name

__all__ = [
    "TENANT_SPECIFIC",
    "TENANT_SCHEMA_PLACEHOLDER",
    "TenantMixin",
    "DomainMixin",
    "TenantModelMixin",
    "BaseTenant",
    "BaseDomain",
    "BaseTenantModel",
    "TenantSQLAlchemy",
    "db",
    "is_tenant_table",
    "tenant_tables",
    "unqualify_placeholder_tables",
    "shared_tables",
]

#: ``__table_args__ = {'info': TENANT_SPECIFIC}`` marks a table as living in every tenant's schema.
TENANT_SPECIFIC: dict[str, Any] = {"tenant_specific": True}
#: The schema name the original ``BaseTenantModel`` put on tenant tables; rewritten at run time.
TENANT_SCHEMA_PLACEHOLDER = "tenant"


def is_tenant_table(table: Table) -> bool:
    """True when ``table`` is created in each tenant's schema rather than in ``public``."""
    return bool(table.info.get("tenant_specific")) or table.schema == TENANT_SCHEMA_PLACEHOLDER


def tenant_tables(metadatas: Iterable[MetaData]) -> list[Table]:
    """The tenant-specific tables of ``metadatas``, in dependency order."""
    out: list[Table] = []
    for md in metadatas:
        out.extend(t for t in md.sorted_tables if is_tenant_table(t))
    return out


def unqualify_placeholder_tables(tables: Iterable[Table]) -> None:
    """Render tables declared in the placeholder schema ``tenant`` (the original
    ``BaseTenantModel``'s ``__table_args__``) without a schema from now on, so that queries find
    them through the search_path -- in the current tenant's schema -- instead of in a schema
    called ``tenant``. They stay marked tenant-specific and keep their key in their MetaData."""
    for table in tables:
        if table.schema == TENANT_SCHEMA_PLACEHOLDER:
            table.info["tenant_specific"] = True
            table.schema = None


def shared_tables(metadata: MetaData) -> list[Table]:
    """The tables of ``metadata`` that live once, in the shared (public) schema."""
    return [t for t in metadata.sorted_tables if not is_tenant_table(t)]


class TenantMixin:
    """Columns of a tenant: ``id``, unique ``name`` (also its schema name), timestamps.

    Add ``deactivated = Column(Boolean, nullable=False, default=False)`` to be able to switch a
    tenant off without deleting it.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, unique=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime, nullable=False, default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime,
        nullable=False,
        default=func.current_timestamp(),
        onupdate=func.current_timestamp(),
    )

    @validates("name")
    def _validate_name(self, key: str, value: str) -> str:
        return validate_tenant_name(value)

    @property
    def schema_name(self) -> str:
        """The PostgreSQL schema holding this tenant's tables (its name)."""
        return self.name


class DomainMixin:
    """Columns of a domain: the host name that selects a tenant.

    ``tenant_name`` references ``tenants.name`` with ``ON UPDATE CASCADE`` so renaming a tenant
    carries its domains along; a model that redefines the column (as the original README's
    ``Domain`` does) has its domains updated by the library instead.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.name", onupdate="CASCADE"), nullable=False, index=True
    )
    domain_name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    @validates("domain_name")
    def _validate_domain_name(self, key: str, value: str) -> str:
        return normalize_domain(value)


class TenantModelMixin:
    """Marks a model as tenant-specific: its table exists in every tenant schema, never in public.

    Subclasses may set their own ``__table_args__``; the marker is added to the table when the
    class is mapped, so it survives an override.
    """

    __table_args__: Any = {"info": dict(TENANT_SPECIFIC)}


@event.listens_for(TenantModelMixin, "after_mapper_constructed", propagate=True)
def _mark_tenant_table(mapper: Mapper[Any], cls: type) -> None:
    table = mapper.local_table
    if isinstance(table, Table):
        table.info["tenant_specific"] = True


class TenantSQLAlchemy(SQLAlchemy):
    """Flask-SQLAlchemy whose ``create_all`` / ``drop_all`` leave tenant tables alone.

    Tenant tables live in tenant schemas only; ``flask tenants`` and the lifecycle API create them.
    """

    def _shared_call(self, bind_key: str | None | list[str | None], op: str) -> None:
        keys: list[str | None]
        if bind_key == "__all__":
            keys = list(self.metadatas)
        elif bind_key is None or isinstance(bind_key, str):
            keys = [bind_key]
        else:
            keys = list(bind_key)
        for key in keys:
            metadata = self.metadatas[key]
            getattr(metadata, op)(bind=self.engines[key], tables=shared_tables(metadata))

    def create_all(self, bind_key: str | None | list[str | None] = "__all__") -> None:
        """Create the shared tables of all binds (tenant tables are created per tenant)."""
        self._shared_call(bind_key, "create_all")

    def drop_all(self, bind_key: str | None | list[str | None] = "__all__") -> None:
        """Drop the shared tables of all binds (tenant schemas are dropped per tenant)."""
        self._shared_call(bind_key, "drop_all")


#: The library's Flask-SQLAlchemy instance; ``init_app`` binds it to the app.
db = TenantSQLAlchemy()


class BaseTenant(TenantMixin, db.Model):  # type: ignore[name-defined,misc]
    """Abstract tenant model on ``flask_tenants.db`` (table name is yours, e.g. ``tenants``)."""

    __abstract__ = True


class BaseDomain(DomainMixin, db.Model):  # type: ignore[name-defined,misc]
    """Abstract domain model on ``flask_tenants.db``."""

    __abstract__ = True


class BaseTenantModel(TenantModelMixin, db.Model):  # type: ignore[name-defined,misc]
    """Abstract base of tenant-specific models on ``flask_tenants.db``."""

    __abstract__ = True
