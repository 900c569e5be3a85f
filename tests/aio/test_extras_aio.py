"""The extras on the Quart door: identification strategies, strict mode, for_each_tenant_async,
the plugin's client and isolation assertion, tenant_resolved."""

from __future__ import annotations

from typing import Any

from quart import Quart
from sqlalchemy import func, select

from flask_tenants.aio import QuartTenants
from flask_tenants.fleet import for_each_tenant_async
from flask_tenants.signals import tenant_resolved
from flask_tenants.strict import is_strict
from flask_tenants.testing.plugin import TenantClient, assert_tenant_isolation_async, tenant_host

from .app import create_shared_tables, make_app
from .models import Tank

PUBLIC = {"host": "www.example.com"}


async def _app(url: str, **config: Any) -> tuple[Quart, QuartTenants]:
    app, tenancy = make_app(url, **config)
    await create_shared_tables(tenancy, app)
    for name in ("acme", "globex"):
        await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
    return app, tenancy


async def test_path_strategy_on_quart(fresh_db: str) -> None:
    app, tenancy = await _app(fresh_db, TENANTS_IDENTIFICATION=["domain", "subdomain", "path"])
    try:
        c = app.test_client()
        r = await c.post("/t/acme/tanks", json={"name": "a1"}, headers=PUBLIC)
        assert r.status_code == 201, await r.get_data(as_text=True)
        assert (await r.get_json())["url"] == "/t/acme/tanks/1"  # url_for keeps the prefix
        r = await c.get("/t/acme/tanks", headers=PUBLIC)
        assert await r.get_json() == {"tenant": "acme", "tanks": ["a1"]}
        r = await c.get("/t/globex/tanks", headers=PUBLIC)
        assert await r.get_json() == {"tenant": "globex", "tanks": []}
        r = await c.get("/tanks", headers={"host": "acme.example.com"})
        assert await r.get_json() == {"tenant": "acme", "tanks": ["a1"]}
        assert (await c.get("/t/nope/tanks", headers=PUBLIC)).status_code == 404
    finally:
        await tenancy.dispose()


async def test_header_strategy_on_quart_trusts_only_proxies(fresh_db: str) -> None:
    app, tenancy = await _app(
        fresh_db,
        TENANTS_IDENTIFICATION=["header", "domain", "subdomain"],
        TENANTS_TRUSTED_PROXIES=["127.0.0.1"],
    )
    proxy = {"client": ("127.0.0.1", 40000)}  # the ASGI scope's peer address
    try:
        c = app.test_client()
        r = await c.get(
            "/tanks", headers={"host": "acme.example.com", "X-Tenant": "globex"}, scope_base=proxy
        )
        assert (await r.get_json())["tenant"] == "globex"
        r = await c.get(
            "/tanks", headers={"host": "www.example.com", "X-Tenant": "acme"}, scope_base=proxy
        )
        assert (await r.get_json())["tenant"] == "acme"
        # no peer address at all (Quart's test client default): not a trusted proxy
        r = await c.get("/tanks", headers={"host": "acme.example.com", "X-Tenant": "globex"})
        assert (await r.get_json())["tenant"] == "acme"
    finally:
        await tenancy.dispose()


async def test_untrusted_peer_header_is_ignored_on_quart(fresh_db: str) -> None:
    app, tenancy = make_app(
        fresh_db,
        TENANTS_IDENTIFICATION=["header", "domain", "subdomain"],
        TENANTS_TRUSTED_PROXIES=["10.0.0.0/8"],
    )
    await create_shared_tables(tenancy, app)
    try:
        for name in ("acme", "globex"):
            await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        c = app.test_client()
        r = await c.get(
            "/tanks",
            headers={"host": "acme.example.com", "X-Tenant": "globex"},
            scope_base={"client": ("203.0.113.9", 40000)},
        )
        assert (await r.get_json())["tenant"] == "acme"
    finally:
        await tenancy.dispose()


async def test_strict_fleet_and_resolved_signal_on_quart(fresh_db: str) -> None:
    app, tenancy = await _app(fresh_db, TENANTS_STRICT=True)
    got: list[dict[str, Any]] = []

    def receiver(sender: Any, **kw: Any) -> None:
        got.append(kw)

    tenant_resolved.connect(receiver)
    try:
        assert is_strict(tenancy.state_for(app).engine)
        c = app.test_client()
        r = await c.post("/tanks", json={"name": "g1"}, headers={"host": "globex.example.com"})
        assert r.status_code == 201
        assert got == [{"tenant": "globex", "host": "globex.example.com"}]

        async def count(session: Any) -> int:
            return int((await session.execute(select(func.count(Tank.id)))).scalar_one())

        async with app.app_context():
            results = {t: n async for t, n in for_each_tenant_async(count, concurrency=2)}
            from flask_tenants.aio import for_each_tenant  # the same name as the sync door's

            assert {t: n async for t, n in for_each_tenant(count)} == results
        assert results == {"acme": 0, "globex": 1}
    finally:
        tenant_resolved.disconnect(receiver)
        await tenancy.dispose()


async def test_plugin_client_and_isolation_assertion_on_quart(fresh_db: str) -> None:
    app, tenancy = await _app(fresh_db)
    try:
        client = TenantClient(app, "acme.example.com")
        r = await client.get("/tanks")
        assert await r.get_json() == {"tenant": "acme", "tanks": []}

        def seed(session: Any, tenant: str) -> str:
            session.add(Tank(name=f"tank-of-{tenant}"))
            return f"tank-of-{tenant}"

        await assert_tenant_isolation_async(app, "/tanks", seed)
        r = await TenantClient(app, tenant_host("isolation1")).get("/tanks")
        assert await r.get_json() == {"tenant": "isolation1", "tanks": ["tank-of-isolation1"]}
    finally:
        await tenancy.dispose()
