"""A tour of the extras: tenant context, signals, strict mode, for_each_tenant, identification
strategies, per-tenant cache keys and the doctor. The README's "Beyond requests" section quotes it.

    python examples/extras_tour.py          # embedded PostgreSQL unless DATABASE_URL is set
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, g, jsonify
from sqlalchemy import Integer, String, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants import FlaskTenants, current_tenant, tenant_context, with_db
from flask_tenants.doctor import run_checks
from flask_tenants.exceptions import TenantContextError, TenantIsolationError
from flask_tenants.fleet import for_each_tenant
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin, shared_tables
from flask_tenants.signals import tenant_created, tenant_renamed
from flask_tenants.strict import allow_cross_tenant


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


def create_app(url: str) -> tuple[Flask, FlaskTenants]:
    app = Flask(__name__)
    app.config.update(
        TENANTS_DATABASE_URL=url,
        TENANTS_STRICT=True,  # tenant tables need a tenant context
        TENANTS_IDENTIFICATION=["domain", "subdomain", "path"],  # + /t/<tenant>/...
        TENANTS_ENGINE_OPTIONS={"pool_pre_ping": True, "pool_recycle": 1800},
    )
    tenants = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    bp = tenants.create_tenant_blueprint("invoices")

    @bp.route("/invoices")
    def invoices():  # type: ignore[no-untyped-def]
        rows = g.db_session.scalars(select(Invoice.customer).order_by(Invoice.id))
        return jsonify(tenant=g.tenant, customers=list(rows))

    app.register_blueprint(bp)
    Base.metadata.create_all(tenants.state_for(app).engine, tables=shared_tables(Base.metadata))
    return app, tenants


def main(url: str) -> None:
    app, tenants = create_app(url)

    # -- signals: sent after the commit, never for rolled-back work --------------------------
    @tenant_created.connect
    def welcome(sender: Flask, tenant: str, **kw: object) -> None:
        with sender.app_context(), with_db(tenant) as session:  # the schema exists by now
            session.add(Invoice(customer=f"welcome-{tenant}", cents=0))
            session.commit()

    @tenant_renamed.connect
    async def audit(sender: Flask, tenant: str, old_name: str, **kw: object) -> None:
        print(f"renamed {old_name} -> {tenant}")  # async receivers work too

    for name in ("acme", "globex", "initech"):
        tenants.create_tenant(name, domains=[f"{name}.example.com"])
    tenants.rename_tenant("initech", "initrode")

    # -- one tenant context everywhere: a thread pool of jobs ---------------------------------
    def job(tenant: str) -> tuple[str, int]:
        with app.app_context(), with_db(tenant) as session:  # enter the context in the task
            session.add(Invoice(customer=f"{tenant}-customer", cents=1000))
            session.commit()
            return tenant, session.scalar(select(func.count(Invoice.id))) or 0

    with ThreadPoolExecutor(max_workers=3) as pool:
        print(sorted(pool.map(job, ["acme", "globex", "initrode"])))

    # -- strict mode -------------------------------------------------------------------------
    with app.app_context():
        with tenants.new_session() as session:
            try:
                session.execute(select(Invoice))  # no tenant context
            except TenantContextError as exc:
                print("refused:", str(exc).split(".")[0])
        with tenant_context("acme"), tenants.new_session() as session:
            try:
                session.execute(text("SELECT customer FROM globex.invoices"))
            except TenantIsolationError as exc:
                print("refused:", str(exc).split("(")[0].strip())
            session.rollback()
            with allow_cross_tenant():
                rows = session.execute(text("SELECT customer FROM globex.invoices")).all()
                print("allowed:", [r[0] for r in rows])

        # -- cross-tenant report, on purpose -------------------------------------------------
        totals = dict(for_each_tenant(lambda s: s.scalar(select(func.sum(Invoice.cents)))))
        print("totals:", totals)

        # -- the doctor (the CLI: flask tenants doctor) --------------------------------------
        for finding in run_checks(only=["schemas", "search_path"]):
            print(finding)

    # -- identification: the host, or /t/<tenant>/ on a public host ---------------------------
    client = app.test_client()
    print(client.get("/invoices", base_url="http://acme.example.com").json)
    print(client.get("/t/globex/invoices", base_url="http://www.example.com").json)
    assert current_tenant() is None

    async def settle() -> None:
        from flask_tenants.signals import drain

        await drain()

    asyncio.run(settle())
    tenants.state_for(app).engine.dispose()


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
