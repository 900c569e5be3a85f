"""The Quart app of the async tests: README-shaped routes on the async door."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Quart, g, jsonify, request, url_for
from sqlalchemy import select, text

from flask_tenants.aio import QuartTenants

from .models import SHARED_TABLES, AioBase, Domain, Tank, Tenant


def make_app(url: str, **config: Any) -> tuple[Quart, QuartTenants]:
    app = Quart(__name__)
    app.config["TENANTS_DATABASE_URL"] = url
    app.config.update(config)
    tenancy = QuartTenants(app, tenant_model=Tenant, domain_model=Domain, db=AioBase).init()
    public = tenancy.create_public_blueprint("public")
    tenant = tenancy.create_tenant_blueprint("tenant")

    @public.route("/")
    async def index() -> Any:
        rows = (await g.db_session.execute(select(Tenant.name).order_by(Tenant.name))).scalars()
        return jsonify({"tenant": g.tenant, "tenants": list(rows)})

    @tenant.route("/tanks")
    async def list_tanks() -> Any:
        tanks = (await g.db_session.execute(select(Tank).order_by(Tank.id))).scalars().all()
        return jsonify({"tenant": g.tenant, "tanks": [t.name for t in tanks]})

    @tenant.route("/tanks", methods=["POST"])
    async def add_tank() -> Any:
        data = await request.get_json()
        tank = Tank(name=data["name"])
        g.db_session.add(tank)
        await g.db_session.commit()
        return jsonify({"id": tank.id, "url": url_for("tenant.get_tank", tank_id=tank.id)}), 201

    @tenant.route("/tanks/<int:tank_id>")
    async def get_tank(tank_id: int) -> Any:
        tank = await g.db_session.get(Tank, tank_id)
        if tank is None:
            return jsonify({"error": "no such tank"}), 404
        return jsonify({"id": tank.id, "name": tank.name})

    @tenant.route("/path")
    async def search_path() -> Any:
        path = (await g.db_session.execute(text("SHOW search_path"))).scalar()
        return jsonify({"tenant": g.tenant, "search_path": path})

    @tenant.route("/boom")
    async def boom() -> Any:
        g.db_session.add(Tank(name="never"))
        await g.db_session.flush()
        raise RuntimeError("view failed half-way")

    @tenant.route("/slow")
    async def slow() -> Any:
        await g.db_session.execute(text("SELECT pg_sleep(0.05)"))
        await asyncio.sleep(10)
        return "unreachable"

    @tenant.route("/check")
    async def check() -> Any:
        names = (await g.db_session.execute(select(Tank.name))).scalars().all()
        path = (await g.db_session.execute(text("SHOW search_path"))).scalar()
        return jsonify({"tenant": g.tenant, "names": names, "paths": [path]})

    @tenant.route("/multi", methods=["POST"])
    async def multi() -> Any:
        """Three transactions in one request: each must run in the request's schema."""
        names: list[str] = []
        paths: list[str] = []
        for step in range(3):
            g.db_session.add(Tank(name=f"{g.tenant}-m{step}"))
            await g.db_session.commit()
            await asyncio.sleep(0)
            names += (await g.db_session.execute(select(Tank.name))).scalars().all()
            paths.append((await g.db_session.execute(text("SHOW search_path"))).scalar())
            await g.db_session.commit()
        return jsonify({"tenant": g.tenant, "names": names, "paths": paths})

    @tenant.route("/slowquery")
    async def slow_query() -> Any:
        await g.db_session.execute(text("SELECT pg_sleep(5)"))
        return "unreachable"

    app.register_blueprint(public)
    app.register_blueprint(tenant)
    return app, tenancy


async def create_shared_tables(tenancy: QuartTenants, app: Quart) -> None:
    engine = tenancy.state_for(app).engine
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: AioBase.metadata.create_all(c, tables=SHARED_TABLES))
