"""Background jobs per tenant with a plain ``concurrent.futures`` pool.

    python examples/jobs_example.py          # embedded PostgreSQL unless DATABASE_URL is set

The pattern, the same for Celery, RQ, Dramatiq or a cron script:

1. enqueue the tenant's *name* with the job (never a session, a model object or a connection:
   they belong to the process and transaction that made them);
2. in the task, enter ``app.app_context()`` and ``with_db(name)`` (or ``tenant_context(name)``)
   before touching the database; every transaction begun inside runs in that tenant's schema;
3. commit inside the block. Leaving it restores the worker's previous (empty) context, so the
   next job on the same worker thread starts clean.

Celery::

    @celery.task
    def close_month(tenant: str, month: str) -> int:
        with flask_app.app_context(), with_db(tenant) as session:
            n = close_invoices(session, month)
            session.commit()
            return n

    close_month.delay(current_tenant(), "2024-05")   # from a request: pass the name

RQ: ``queue.enqueue(close_month, "acme", "2024-05")`` with the same function (no decorator).

Threads (``concurrent.futures``, below) do not inherit the submitter's context -- a worker thread
starts with no tenant -- so the name is passed explicitly there too.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from sqlalchemy import Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants import FlaskTenants, current_tenant, with_db
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin, shared_tables


class Base(DeclarativeBase):
    pass


class Tenant(TenantMixin, Base):
    __tablename__ = "tenants"


class Domain(DomainMixin, Base):
    __tablename__ = "domains"


class Invoice(TenantModelMixin, Base):
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(String(100))
    cents: Mapped[int] = mapped_column(Integer)
    paid: Mapped[bool] = mapped_column(default=False)


def create_app(url: str) -> Flask:
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = url
    tenants = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    with app.app_context():
        Base.metadata.create_all(tenants.state.engine, tables=shared_tables(Base.metadata))
    return app


# -- the job: takes the tenant's name, enters the context itself ------------------------------
def mark_paid_and_total(app: Flask, tenant: str) -> tuple[str, int, int]:
    """Mark the tenant's invoices paid; return (tenant, invoices, total cents)."""
    with app.app_context(), with_db(tenant) as session:
        assert current_tenant() == tenant
        invoices = session.scalars(select(Invoice).where(Invoice.paid.is_(False))).all()
        for inv in invoices:
            inv.paid = True
        total = session.scalar(select(func.coalesce(func.sum(Invoice.cents), 0)))
        session.commit()
        return tenant, len(invoices), int(total or 0)


def main(url: str) -> list[tuple[str, int, int]]:
    app = create_app(url)
    tenancy: FlaskTenants = app.extensions["flask_tenants"].extension
    names = ["acme", "globex", "initech", "umbrella"]
    for i, name in enumerate(names, start=1):
        tenancy.create_tenant(name, domains=[f"{name}.localhost"])
        with app.app_context(), with_db(name) as session:
            session.add_all(Invoice(customer=f"c{j}", cents=100 * i) for j in range(i))
            session.commit()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = sorted(pool.map(lambda n: mark_paid_and_total(app, n), names))
    for tenant, marked, total in results:
        print(f"{tenant}: marked {marked} invoices paid, total {total} cents", flush=True)
    tenancy.state.engine.dispose()
    return results


if __name__ == "__main__":
    database_url = os.environ.get("DATABASE_URL")
    server = None
    if not database_url:
        from flask_tenants.testing.server import start_embedded_postgres

        server = start_embedded_postgres()
        database_url = server.url
    try:
        main(database_url)
    finally:
        if server is not None:
            server.stop()
    sys.exit(0)
