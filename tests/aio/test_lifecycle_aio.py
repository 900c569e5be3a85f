"""The await-based lifecycle API and bad input, against the async door.

Every operation is atomic: a failure (bad name, taken domain, an error injected after the DDL)
leaves no tenant row, no domain and no schema behind, and raises the core's exceptions.
"""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select, text

from flask_tenants import lifecycle
from flask_tenants.aio import (
    DomainError,
    InvalidTenantNameError,
    QuartTenants,
    TenantExistsError,
    TenantNotFoundError,
)

from .models import Domain, Tank, Tenant


async def catalog(tenancy: QuartTenants, app: Quart) -> dict[str, Any]:
    """Tenant rows, domains and non-system schemas, read directly."""
    engine = tenancy.state_for(app).engine
    async with engine.connect() as c:
        tenants = (await c.execute(select(Tenant.name).order_by(Tenant.name))).scalars().all()
        domains = (
            await c.execute(
                select(Domain.domain_name, Domain.tenant_name, Domain.is_primary).order_by(
                    Domain.domain_name
                )
            )
        ).all()
        schemas = (
            (
                await c.execute(
                    text(
                        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                        "AND nspname NOT IN ('information_schema', 'public') ORDER BY 1"
                    )
                )
            )
            .scalars()
            .all()
        )
    return {"tenants": list(tenants), "domains": [tuple(d) for d in domains], "schemas": schemas}


async def test_create_tenant_makes_row_schema_tables_and_domains(quart_app: Any) -> None:
    app, tenancy = quart_app
    t = await tenancy.create_tenant("acme", domains=["acme.example.com", "ACME.example.org"])
    assert t.name == "acme" and t.id is not None
    cat = await catalog(tenancy, app)
    assert cat["tenants"] == ["acme"] and cat["schemas"] == ["acme"]
    assert cat["domains"] == [
        ("acme.example.com", "acme", True),
        ("acme.example.org", "acme", False),
    ]
    async with tenancy.with_db("acme") as s:
        assert (await s.execute(select(Tank))).all() == []
    got = await tenancy.get_tenant("acme")
    assert got.name == "acme"


INVALID_NAMES = [
    "Acme",
    "ac-me",
    "public",
    "pg_catalog",
    "information_schema",
    "tenant",
    "1acme",
    "",
    "a" * 64,
    'acme"; DROP SCHEMA public CASCADE; --',
    "acme tenant",
    "ácme",
]


async def test_invalid_names_leave_nothing(quart_app: Any) -> None:
    app, tenancy = quart_app
    for name in INVALID_NAMES:
        with pytest.raises(InvalidTenantNameError):
            await tenancy.create_tenant(name, domains=["x.example.com"])
        with pytest.raises(InvalidTenantNameError):
            await tenancy.get_tenant(name)
    await tenancy.create_tenant("acme")
    for name in INVALID_NAMES:
        with pytest.raises(InvalidTenantNameError):
            await tenancy.rename_tenant("acme", name)
    assert await catalog(tenancy, app) == {"tenants": ["acme"], "domains": [], "schemas": ["acme"]}


async def test_duplicates_and_taken_domains_are_refused_atomically(quart_app: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    before = await catalog(tenancy, app)
    with pytest.raises(TenantExistsError):
        await tenancy.create_tenant("acme")
    with pytest.raises(DomainError):
        await tenancy.create_tenant("globex", domains=["ACME.example.com"])
    with pytest.raises(DomainError):
        await tenancy.create_tenant("globex", domains=["g.example.com", "g.example.com"])
    with pytest.raises(DomainError):
        await tenancy.create_tenant("globex", domains=["not a host"])
    assert await catalog(tenancy, app) == before


async def test_orphan_schema_blocks_creation_without_a_row(quart_app: Any) -> None:
    app, tenancy = quart_app
    async with tenancy.state_for(app).engine.begin() as c:
        await c.execute(text('CREATE SCHEMA "orphan"'))
    with pytest.raises(TenantExistsError):
        await tenancy.create_tenant("orphan", domains=["orphan.example.com"])
    cat = await catalog(tenancy, app)
    assert cat["tenants"] == [] and cat["domains"] == []


async def test_failure_after_the_ddl_rolls_everything_back(
    quart_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error after the schema, tables and domains were made (before commit) undoes them."""
    app, tenancy = quart_app
    real = lifecycle.create_tenant

    def create_then_fail(*args: Any, **kw: Any) -> Any:
        real(*args, **kw)
        raise RuntimeError("injected after the DDL")

    monkeypatch.setattr(lifecycle, "create_tenant", create_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        await tenancy.create_tenant("acme", domains=["acme.example.com"])
    assert await catalog(tenancy, app) == {"tenants": [], "domains": [], "schemas": []}
    assert tenancy.state_for(app).engine.pool.checkedout() == 0
    monkeypatch.undo()
    await tenancy.create_tenant("acme", domains=["acme.example.com"])  # the name is free


async def test_rename_deactivate_delete_through_requests(quart_app: Any, client: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    await tenancy.create_tenant("globex", domains=["globex.example.com"])
    r = await client.post("/tanks", json={"name": "a1"}, headers={"Host": "acme.example.com"})
    assert r.status_code == 201
    # warm the cache, then rename: the cache must not keep the old answer
    assert (await client.get("/tanks", headers={"Host": "acme.example.com"})).status_code == 200
    with pytest.raises(TenantExistsError):
        await tenancy.rename_tenant("acme", "globex")
    await tenancy.rename_tenant("acme", "acme_corp")
    r = await client.get("/tanks", headers={"Host": "acme.example.com"})
    assert await r.get_json() == {"tenant": "acme_corp", "tanks": ["a1"]}
    cat = await catalog(tenancy, app)
    assert cat["schemas"] == ["acme_corp", "globex"]
    assert ("acme.example.com", "acme_corp", True) in cat["domains"]

    await tenancy.deactivate_tenant("acme_corp")
    assert (await client.get("/tanks", headers={"Host": "acme.example.com"})).status_code == 403
    await tenancy.activate_tenant("acme_corp")
    assert (await client.get("/tanks", headers={"Host": "acme.example.com"})).status_code == 200

    await tenancy.add_domain("acme_corp", "acme.example.net", primary=True)
    await tenancy.set_primary_domain("acme.example.com")
    await tenancy.remove_domain("acme.example.net")
    with pytest.raises(DomainError):
        await tenancy.remove_domain("acme.example.net")
    with pytest.raises(DomainError):
        await tenancy.add_domain("globex", "acme.example.com")

    await tenancy.delete_tenant("acme_corp")
    assert (await client.get("/tanks", headers={"Host": "acme.example.com"})).status_code == 404
    cat = await catalog(tenancy, app)
    assert cat == {
        "tenants": ["globex"],
        "domains": [("globex.example.com", "globex", True)],
        "schemas": ["globex"],
    }
    with pytest.raises(TenantNotFoundError):
        await tenancy.delete_tenant("acme_corp")
    with pytest.raises(TenantNotFoundError):
        await tenancy.get_tenant("nobody")


HOSTILE_HOSTS = [
    "",
    ".",
    "..",
    "a..b.example.com",
    "acme.example.com:abc",
    "acme.example.com:99999999999999999999",
    "x" * 300 + ".example.com",
    ("a" * 63 + ".") * 5 + "com",
    "acme.example.com'; DROP TABLE tenants; --",
    "acme.example.com\\",
    "acme.example.com/../../etc",
    "-acme.example.com",
    "acme_.example.com",
    "nobody.example.com",
    "pg_catalog.example.com",
    "public.example.com",
    "information_schema.example.com",
    "127.0.0.1",
    "[::1]",
    "[::1",
    "ünï.example.com",
    "xn--.example.com",
    "acme.example.com\t",
    "%00.example.com",
    "acme.example.com@evil.com",
]


async def test_hostile_hosts_answer_404_never_500(quart_app: Any) -> None:
    app, tenancy = quart_app
    client = app.test_client(use_cookies=False)  # the cookie jar cannot parse some hosts
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    for raw in HOSTILE_HOSTS:
        for path in ("/tanks", "/_tenant/tanks", "/", "/tanks/1"):
            r = await client.get(path, headers={"Host": raw})
            assert r.status_code in (200, 404), (raw, path, r.status_code, await r.get_data())
            if r.status_code == 200:  # only public pages, never a tenant's data
                data = await r.get_json()
                assert data["tenant"] == "public", (raw, path, data)
    # the lookup cache stays usable and right
    r = await client.get("/tanks", headers={"Host": "ACME.Example.COM."})
    assert await r.get_json() == {"tenant": "acme", "tanks": []}
    assert tenancy.state_for(app).engine.pool.checkedout() == 0
