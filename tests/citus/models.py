"""Models of the Citus tests: a shared ``plans`` table that tenant tables reference by foreign key
(so it must become a Citus reference table), and two tenant tables, one referencing the other."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin


class CitusBase(DeclarativeBase):
    pass


class Tenant(TenantMixin, CitusBase):
    __tablename__ = "tenants"


class Domain(DomainMixin, CitusBase):
    __tablename__ = "domains"


class Plan(CitusBase):
    """Shared: one row per price plan, referenced from every tenant."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Item(TenantModelMixin, CitusBase):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))


class Note(TenantModelMixin, CitusBase):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    body: Mapped[str] = mapped_column(String(200))


SHARED_TABLES = [Tenant.__table__, Domain.__table__, Plan.__table__]
