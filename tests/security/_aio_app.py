"""The same app as :mod:`._app` on the async door (Quart, asyncpg): same routes, same answers."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Quart, g, jsonify, request
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from flask_tenants.aio import QuartTenants

from ._app import Domain, Item, SecBase, Tenant


async def _state(s: AsyncSession) -> dict[str, Any]:
    schema, path = (
        await s.execute(text("SELECT current_schema(), current_setting('search_path')"))
    ).one()
    tags = list((await s.scalars(select(Item.tenant))).all())
    raw = [r[0] for r in await s.execute(text("SELECT tenant FROM items"))]
    return {"schema": schema, "path": path, "tags": tags + raw}


def make_aio_app(
    engine: AsyncEngine, admin: AsyncEngine | None = None
) -> tuple[Quart, QuartTenants]:
    """A Quart app serving ``/items`` on tenant hosts; ``?fault=`` injects a fault in the view."""
    app = Quart(__name__)
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    tenancy = QuartTenants(
        app, tenant_model=Tenant, domain_model=Domain, db=SecBase, engine=engine
    ).init()
    bp = tenancy.create_tenant_blueprint("t")
    pub = tenancy.create_public_blueprint("p")

    @app.errorhandler(Exception)
    async def _error(exc: Exception) -> Any:
        code = getattr(exc, "code", None)
        if isinstance(code, int) and 400 <= code < 600:
            return jsonify(error=type(exc).__name__), code
        gone = bool(getattr(exc, "connection_invalidated", False))
        return jsonify(error=type(exc).__name__, disconnect=gone, detail=str(exc)[:300]), 500

    @bp.route("/items", methods=["GET", "POST"])
    async def items() -> Any:
        fault = request.args.get("fault", "")
        s: AsyncSession = g.db_session
        first = None
        if fault == "rollback":
            await s.execute(insert(Item).values(tenant=g.tenant, payload="rolled back"))
            await s.rollback()
        elif fault == "statement_recovered":
            try:
                await s.execute(text("SELECT 1/0"))
            except DBAPIError:
                await s.rollback()
        elif fault == "statement":
            await s.execute(text("SELECT 1/0"))
        elif fault == "write" or request.method == "POST":
            s.add(Item(tenant=g.tenant, payload="w"))
            await s.commit()
        elif fault == "two_transactions":
            first = await _state(s)
            await s.commit()
        elif fault == "slow":  # the client cancels this one
            await s.execute(text("SELECT pg_sleep(0.05)"))
            await asyncio.sleep(0.05)
        out = await _state(s)
        if first is not None:
            out["tags"] += first["tags"]
            if first["schema"] != out["schema"]:
                out["schema"] = f"{first['schema']}|{out['schema']}"
        if fault == "raise":
            raise RuntimeError("fault injected in the view")
        if fault == "kill":
            assert admin is not None
            pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with admin.connect() as a:
                await a.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
            await s.execute(text("SELECT 1"))  # fails: the server closed this connection
        return jsonify(tenant=g.tenant, **out)

    @pub.route("/")
    async def home() -> Any:
        return jsonify(tenant=g.tenant, **(await _state(g.db_session)))

    app.register_blueprint(bp)
    app.register_blueprint(pub)
    return app, tenancy
