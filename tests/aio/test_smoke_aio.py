from __future__ import annotations

from typing import Any

from quart import Quart

from flask_tenants.aio import QuartTenants


async def test_readme_flow(quart_app: tuple[Quart, QuartTenants], client: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    await tenancy.create_tenant("globex", domains=["globex.example.com"])
    r = await client.get("/", headers={"Host": "www.example.com"})
    assert await r.get_json() == {"tenant": "public", "tenants": ["acme", "globex"]}
    r = await client.post("/tanks", json={"name": "a1"}, headers={"Host": "acme.example.com"})
    assert r.status_code == 201, await r.get_data()
    assert (await r.get_json())["url"] == "/tanks/1"
    r = await client.get("/tanks", headers={"Host": "acme.example.com"})
    assert await r.get_json() == {"tenant": "acme", "tanks": ["a1"]}
    r = await client.get("/tanks", headers={"Host": "globex.example.com"})
    assert await r.get_json() == {"tenant": "globex", "tanks": []}
    assert (await client.get("/tanks", headers={"Host": "nope.example.com"})).status_code == 404
    r = await client.get("/_tenant/tanks", headers={"Host": "www.example.com"})
    assert r.status_code == 404
