"""The two Quart apps the async benchmark compares (asyncpg), and how their databases are filled.

``GET /tanks`` lists the first 10 rows of a 100-row table as JSON. The *plain* app is Quart with
an async SQLAlchemy session per request and no tenancy; the *tenancy* app serves the same view
from a tenant blueprint of ``flask_tenants.aio``. Hypercorn loads them as
``quart_apps:plain_app()`` / ``quart_apps:tenancy_app()`` with the database URLs in
``BENCH_PLAIN_URL`` / ``BENCH_TENANCY_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from quart import Quart, g, jsonify
from sqlalchemy import Float, Integer, String, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants.aio import (
    BaseDomain,
    BaseTenant,
    BaseTenantModel,
    QuartTenants,
    async_database_url,
)

ROWS_LISTED = 10

#: Both apps' pools hold more connections than a worker serves requests at once: with
#: SQLAlchemy's default (5) a hypercorn worker given 6 of wrk's 8 connections opens and closes
#: overflow connections all the time, and connecting (asyncpg's setup queries, a new backend)
#: then decides the figures of both apps.
POOL = {"pool_size": 12, "max_overflow": 4}


class PlainBase(DeclarativeBase):
    pass


class PlainTank(PlainBase):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    capacity: Mapped[float] = mapped_column(Float)
    location: Mapped[str] = mapped_column(String(255))


class Tenant(BaseTenant):
    __tablename__ = "tenants"


class Domain(BaseDomain):
    __tablename__ = "domains"


class Tank(BaseTenantModel):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    capacity: Mapped[float] = mapped_column(Float)
    location: Mapped[str] = mapped_column(String(255))


async def _tank_view(session: Any, model: Any) -> Any:
    rows = (await session.execute(select(model).order_by(model.id).limit(ROWS_LISTED))).scalars()
    return jsonify([{"id": t.id, "name": t.name, "capacity": t.capacity} for t in rows])


def plain_app(url: str | None = None) -> Quart:
    """Quart + an async SQLAlchemy session per request, no tenancy."""
    app = Quart("plain")
    engine = create_async_engine(async_database_url(url or os.environ["BENCH_PLAIN_URL"]), **POOL)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    app.extensions["bench_engine"] = engine

    @app.route("/tanks")
    async def list_tanks() -> Any:
        async with maker() as session:
            return await _tank_view(session, PlainTank)

    return app


def served_plain_app() -> Quart:
    """The plain app for a server process of its own: without flask-tenants' process-wide
    Session listeners, which this module's imports installed (as in an app without it)."""
    from _harness import detach_tenancy

    detach_tenancy()
    return plain_app()


def tenancy_app(url: str | None = None, **config: Any) -> Quart:
    """The same view from a tenant blueprint of flask_tenants.aio."""
    app = Quart("tenancy")
    app.config["SQLALCHEMY_DATABASE_URI"] = url or os.environ["BENCH_TENANCY_URL"]
    app.config["TENANTS_ENGINE_OPTIONS"] = dict(POOL)
    app.config.update(config)
    tenancy = QuartTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    bp = tenancy.create_tenant_blueprint("tanks")

    @bp.route("/tanks")
    async def list_tanks() -> Any:
        return await _tank_view(g.db_session, Tank)

    app.register_blueprint(bp)
    return app


_FILL = (
    "INSERT INTO tanks (name, capacity, location) "
    "SELECT 'tank-' || g, g * 1.5, 'site-' || (g % 7) FROM generate_series(1, :n) AS g"
)


def tenant_name(i: int) -> str:
    return f"t{i:05d}"


def tenant_host(i: int) -> str:
    return f"{tenant_name(i)}.example.com"


async def fill_plain(app: Quart, rows: int) -> None:
    engine = app.extensions["bench_engine"]
    async with engine.begin() as conn:
        await conn.run_sync(PlainBase.metadata.create_all)
        if (await conn.execute(text("SELECT count(*) FROM tanks"))).scalar() == 0:
            await conn.execute(text(_FILL), {"n": rows})


async def fill_tenancy(app: Quart, tenants: int, rows: int) -> None:
    from flask_tenants import tenant_context
    from flask_tenants.models import shared_tables

    state = app.extensions["flask_tenants"]
    engine = state.engine
    async with engine.begin() as conn:
        await conn.run_sync(
            lambda c: Tenant.metadata.create_all(c, tables=shared_tables(Tenant.metadata))
        )
        have = {r[0] for r in await conn.execute(select(Tenant.__table__.c.name))}
    ext = state.extension
    for i in range(tenants):
        name = tenant_name(i)
        if name in have:
            continue
        await ext.create_tenant(name, domains=[tenant_host(i)])
        async with tenant_context(name, ("public",)):
            async with engine.begin() as conn:
                await conn.execute(text(_FILL), {"n": rows})
