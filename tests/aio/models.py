"""One models module serving both doors (the sync-vs-async test uses it with a Flask app too).

The models use the library's mixins on their own ``DeclarativeBase`` so that they never collide
with other test modules' tables on :class:`flask_tenants.declarative.Base`.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants.aio import DomainMixin, TenantMixin, TenantModelMixin


class AioBase(DeclarativeBase):
    pass


class Tenant(TenantMixin, AioBase):
    __tablename__ = "tenants"
    deactivated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Domain(DomainMixin, AioBase):
    __tablename__ = "domains"


class Tank(TenantModelMixin, AioBase):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(128))
    capacity: Mapped[float | None] = mapped_column(Float)


SHARED_TABLES = [Tenant.__table__, Domain.__table__]
