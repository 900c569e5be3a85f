"""Shared by benchmarks/provisioning.py and benchmarks/migrations.py: a database to run on (an
embedded PostgreSQL unless DATABASE_URL is set), a realistic tenant model, an app, and tables.
"""

from __future__ import annotations

import os
import statistics
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase

from flask_tenants import FlaskTenants
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin


@contextmanager
def database(driver: str = "psycopg") -> Iterator[str]:
    """The URL (with ``driver``) of a new empty database, dropped afterwards."""
    server = None
    base = os.environ.get("DATABASE_URL")
    if not base:
        from flask_tenants.testing.server import start_embedded_postgres

        server = start_embedded_postgres()
        base = server.url
        print(f"(embedded PostgreSQL at {base}; set DATABASE_URL to use another server)")
    admin = create_engine(
        make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = "bench_" + uuid.uuid4().hex[:10]
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(base)
            .set(drivername=f"postgresql+{driver}", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if server is not None:
            server.stop()


def build_models() -> dict[str, Any]:
    """A small SaaS tenant model: 11 tables, foreign keys, unique constraints, indexes, an enum,
    server defaults -- what a real app provisions per tenant."""

    class Base(DeclarativeBase):
        pass

    class Tenant(TenantMixin, Base):
        __tablename__ = "tenants"
        deactivated = Column(Boolean, nullable=False, default=False)

    class Domain(DomainMixin, Base):
        __tablename__ = "domains"

    invoice_status = Enum("draft", "open", "paid", "void", name="invoice_status")

    class Customer(TenantModelMixin, Base):
        __tablename__ = "customers"
        id = Column(Integer, primary_key=True)
        name = Column(String(200), nullable=False, index=True)
        email = Column(String(200), unique=True)
        created_at = Column(DateTime, server_default=func.now(), nullable=False)

    class Contact(TenantModelMixin, Base):
        __tablename__ = "contacts"
        id = Column(Integer, primary_key=True)
        customer_id = Column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
        name = Column(String(200), nullable=False)
        phone = Column(String(40))

    class Product(TenantModelMixin, Base):
        __tablename__ = "products"
        id = Column(Integer, primary_key=True)
        sku = Column(String(64), nullable=False, unique=True)
        title = Column(String(200), nullable=False)
        price = Column(Numeric(12, 2), nullable=False, server_default="0")

    class Tag(TenantModelMixin, Base):
        __tablename__ = "tags"
        id = Column(Integer, primary_key=True)
        label = Column(String(64), nullable=False, unique=True)

    class ProductTag(TenantModelMixin, Base):
        __tablename__ = "product_tags"
        product_id = Column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
        tag_id = Column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)

    class Order(TenantModelMixin, Base):
        __tablename__ = "orders"
        id = Column(Integer, primary_key=True)
        customer_id = Column(ForeignKey("customers.id"), nullable=False, index=True)
        placed_at = Column(DateTime, server_default=func.now(), nullable=False)
        note = Column(Text)

    class OrderItem(TenantModelMixin, Base):
        __tablename__ = "order_items"
        __table_args__ = (UniqueConstraint("order_id", "product_id"),)
        id = Column(Integer, primary_key=True)
        order_id = Column(ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
        product_id = Column(ForeignKey("products.id"), nullable=False, index=True)
        quantity = Column(Integer, nullable=False, server_default="1")

    class Invoice(TenantModelMixin, Base):
        __tablename__ = "invoices"
        id = Column(Integer, primary_key=True)
        order_id = Column(ForeignKey("orders.id"), nullable=False, unique=True)
        status = Column(invoice_status, nullable=False, server_default="draft")
        total = Column(Numeric(12, 2), nullable=False)

    class Payment(TenantModelMixin, Base):
        __tablename__ = "payments"
        __table_args__ = (Index("ix_payments_invoice_paid", "invoice_id", "paid_at"),)
        id = Column(Integer, primary_key=True)
        invoice_id = Column(ForeignKey("invoices.id"), nullable=False)
        amount = Column(Numeric(12, 2), nullable=False)
        paid_at = Column(DateTime, nullable=False)

    class Note(TenantModelMixin, Base):
        __tablename__ = "notes"
        id = Column(Integer, primary_key=True)
        customer_id = Column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
        body = Column(Text, nullable=False)

    class AuditLog(TenantModelMixin, Base):
        __tablename__ = "audit_log"
        id = Column(Integer, primary_key=True)
        at = Column(DateTime, server_default=func.now(), nullable=False, index=True)
        actor = Column(String(200))
        action = Column(String(64), nullable=False)

    return {"Base": Base, "Tenant": Tenant, "Domain": Domain}


def build_app(url: str, migrations_dir: str | None = None) -> tuple[Flask, Any, dict[str, Any]]:
    """An app on ``url`` with the benchmark models; shared tables created."""
    models = build_models()
    app = Flask("bench")
    app.config["TENANTS_DATABASE_URL"] = url
    app.config["TENANTS_ENGINE_OPTIONS"] = {"pool_size": 4}
    if migrations_dir:
        app.config["TENANTS_MIGRATIONS_DIR"] = migrations_dir
    ext = FlaskTenants(app, tenant_model=models["Tenant"], domain_model=models["Domain"]).init()
    state = ext.state_for(app)
    shared = [t for t in models["Base"].metadata.sorted_tables if t not in state.tenant_tables]
    models["Base"].metadata.create_all(state.engine, tables=shared)
    return app, ext, models


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join(out)


def flush() -> None:
    sys.stdout.flush()
