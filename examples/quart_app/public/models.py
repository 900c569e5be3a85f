"""Shared (public schema) models on flask_tenants.declarative: no Flask-SQLAlchemy, so the same
module can serve a Flask app (FlaskTenants) and this Quart app (QuartTenants)."""

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_tenants.declarative import BaseDomain, BaseTenant


class Tenant(BaseTenant):
    __tablename__ = "tenants"
    phone_number: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(255))
    deactivated: Mapped[bool] = mapped_column(Boolean(), nullable=False, default=False)


class Domain(BaseDomain):
    __tablename__ = "domains"
    tenant_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tenants.id"))
