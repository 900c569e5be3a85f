"""The tenancy models on a plain SQLAlchemy ``DeclarativeBase`` (no Flask-SQLAlchemy).

Quart apps cannot use Flask-SQLAlchemy; these bases serve both doors, so one models module can be
shared by a Flask app and a Quart app::

    from flask_tenants.declarative import Base, BaseTenant, BaseDomain, BaseTenantModel

    class Tenant(BaseTenant):
        __tablename__ = "tenants"

With your own declarative base, use the mixins instead:
``class Tenant(TenantMixin, MyBase)`` (``TenantMixin``, ``DomainMixin``, ``TenantModelMixin``).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from .models import DomainMixin, TenantMixin, TenantModelMixin

__all__ = ["Base", "BaseTenant", "BaseDomain", "BaseTenantModel"]


class Base(DeclarativeBase):
    """Declarative base for apps that do not use Flask-SQLAlchemy."""


class BaseTenant(TenantMixin, Base):
    """Abstract tenant model on :class:`Base`."""

    __abstract__ = True


class BaseDomain(DomainMixin, Base):
    """Abstract domain model on :class:`Base`."""

    __abstract__ = True


class BaseTenantModel(TenantModelMixin, Base):
    """Abstract base of tenant-specific models on :class:`Base`."""

    __abstract__ = True
