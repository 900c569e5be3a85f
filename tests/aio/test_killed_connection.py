"""A connection killed by the server while a Quart request holds it: the request's answer
stands, teardown does not raise, and the next request works."""

from __future__ import annotations

from typing import Any

from quart import Quart, g, jsonify
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flask_tenants.aio import QuartTenants


async def test_teardown_after_a_server_side_kill(
    quart_app: tuple[Quart, QuartTenants], fresh_db: str
) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    admin = create_engine(
        make_url(fresh_db).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    bp = tenancy.create_tenant_blueprint("killer")

    @bp.route("/kill-me")
    async def kill_me() -> Any:
        # the request's transaction is open on a pooled connection; the server kills it
        pid = (await g.db_session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        with admin.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        return jsonify({"killed": pid})

    app.register_blueprint(bp)
    client = app.test_client()
    try:
        for _ in range(3):
            r = await client.get("/kill-me", headers={"Host": "acme.example.com"})
            assert r.status_code == 200, await r.get_data()
            r = await client.get("/tanks", headers={"Host": "acme.example.com"})
            assert r.status_code == 200, await r.get_data()
            assert (await r.get_json())["tenant"] == "acme"
    finally:
        admin.dispose()
