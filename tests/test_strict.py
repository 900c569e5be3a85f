"""Strict mode: tenant tables need a tenant context; other tenants' schemas need
allow_cross_tenant(); the lifecycle and ordinary requests keep working."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select, text
from sqlalchemy.engine import make_url

from flask_tenants import tenant_context, with_db
from flask_tenants.exceptions import TenantContextError, TenantIsolationError
from flask_tenants.strict import allow_cross_tenant, install, is_strict, text_references
from tests.sample_app import Tank, make_app

GLOBEX_TANKS = Table(
    "tanks", MetaData(), Column("id", Integer), Column("name", String), schema="globex"
)


@pytest.fixture
def app(fresh_db: str) -> Flask:
    app = make_app(fresh_db, TENANTS_STRICT=True)
    tenancy = app.extensions["test_tenancy"]
    for name in ("acme", "globex"):
        tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        with app.app_context(), with_db(name) as s:
            s.add(Tank(name=f"{name}-tank"))
            s.commit()
    return app


def test_strict_is_installed_only_when_asked(db_url: str) -> None:
    strict = make_app(db_url, TENANTS_STRICT=True)  # both drivers
    assert is_strict(strict.extensions["flask_tenants"].engine)
    with strict.app_context(), strict.extensions["flask_tenants"].session_maker() as s:
        with pytest.raises(TenantContextError):
            s.execute(select(Tank.name))
    relaxed = make_app(db_url)
    assert not is_strict(relaxed.extensions["flask_tenants"].engine)


def test_tenant_table_without_context_is_refused(app: Flask) -> None:
    state = app.extensions["flask_tenants"]
    with app.app_context():
        with state.session_maker() as s, pytest.raises(TenantContextError, match="'tanks'"):
            s.query(Tank).all()
        with state.session_maker() as s, pytest.raises(TenantContextError):
            s.execute(text("SELECT name FROM tanks"))
        with tenant_context(None), state.session_maker() as s:  # public is not a tenant
            with pytest.raises(TenantContextError):
                s.execute(select(Tank.name))
        with with_db("acme") as s:
            assert [t.name for t in s.query(Tank)] == ["acme-tank"]
        with allow_cross_tenant(), state.session_maker() as s:
            # explicitly allowed: the statement goes to the default search_path (no tanks there)
            with pytest.raises(Exception, match="tanks"):
                s.execute(text("SELECT name FROM tanks"))


def test_other_tenants_schema_needs_allow_cross_tenant(app: Flask) -> None:
    with app.app_context(), with_db("acme") as s:
        with pytest.raises(TenantIsolationError, match="'globex'"):
            s.execute(select(GLOBEX_TANKS.c.name))
        s.rollback()
        with pytest.raises(TenantIsolationError, match="globex"):
            s.execute(text('SELECT t.name FROM "globex".tanks t'))
        s.rollback()
        with pytest.raises(TenantIsolationError):
            s.execute(text("INSERT INTO globex.tanks (name) VALUES ('x')"))
        s.rollback()
        assert s.execute(text("SELECT t.name FROM tanks t")).scalars().all() == ["acme-tank"]
        assert s.execute(text('SELECT name FROM "acme".tanks')).scalars().all() == ["acme-tank"]
        with allow_cross_tenant():
            assert s.execute(select(GLOBEX_TANKS.c.name)).scalars().all() == ["globex-tank"]
        with pytest.raises(TenantIsolationError):
            s.execute(select(GLOBEX_TANKS.c.name))  # the allowance ended with the block


def test_requests_and_lifecycle_work_in_strict_mode(app: Flask) -> None:
    c = app.test_client()
    r = c.post(
        "/tenants",
        json={"name": "initech", "domain": "initech.example.com"},
        base_url="http://www.example.com",
    )
    assert r.status_code == 201, r.data
    assert c.post("/tanks", json={"name": "i1"}, base_url="http://initech.example.com").json
    r = c.get("/tanks", base_url="http://initech.example.com")
    assert r.json == {"tenant": "initech", "tanks": ["i1"]}
    tenancy = app.extensions["test_tenancy"]
    tenancy.rename_tenant("initech", "initrode")
    tenancy.deactivate_tenant("initrode")
    tenancy.delete_tenant("initrode")


def test_async_engine_is_checked_too(app: Flask, fresh_db: str) -> None:
    pytest.importorskip("greenlet")
    from sqlalchemy.ext.asyncio import create_async_engine

    from flask_tenants.isolation import install as install_isolation

    engine = create_async_engine(make_url(fresh_db).set(drivername="postgresql+asyncpg"))
    install_isolation(engine)
    install(engine, ["tanks"])

    async def main() -> None:
        async with engine.connect() as conn:
            with pytest.raises(TenantContextError):
                await conn.execute(select(Tank.name))
        async with tenant_context("globex"), engine.connect() as conn:
            assert (await conn.execute(select(Tank.name))).scalars().all() == ["globex-tank"]
            with pytest.raises(TenantIsolationError):
                await conn.execute(text("SELECT * FROM acme.tanks"))
        await engine.dispose()

    asyncio.run(main())


def test_plain_engine_strict(app: Flask, fresh_db: str) -> None:
    engine = create_engine(fresh_db)
    from flask_tenants.isolation import install as install_isolation

    install_isolation(engine)
    install(engine, ["tanks"], allowed_schemas=["reporting"])
    with engine.connect() as conn:
        conn.execute(text("CREATE SCHEMA reporting"))  # DDL is not inspected
        conn.execute(text("CREATE TABLE reporting.tanks (id int)"))
        assert conn.execute(text("SELECT count(*) FROM reporting.tanks")).scalar() == 0
        conn.rollback()
    with tenant_context("acme"), engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM tanks")).scalar() == "acme-tank"
    engine.dispose()


@pytest.mark.parametrize(
    ("sql", "refs"),
    [
        ("SELECT * FROM tanks", {(None, "tanks")}),
        ("select * from ONLY tanks join other o on true", {(None, "tanks")}),
        ('SELECT * FROM "Acme"."tanks"', {("Acme", "tanks")}),
        # comma-separated FROM lists are not seen: the heuristic's limits are documented
        ("SELECT * FROM acme . tanks a, globex.tanks", {("acme", "tanks")}),
        ("UPDATE tanks SET name = t.name FROM x t", {(None, "tanks")}),
        ("SELECT t.tanks FROM other t", set()),  # a column named like a table: not a reference
        ("CREATE TABLE tanks (id int)", set()),
        ("/* c */ ALTER TABLE acme.tanks ADD x int", set()),
        ("SELECT 1", set()),
    ],
)
def test_text_heuristic(sql: str, refs: set[Any]) -> None:
    found = {(s, n) for s, n, _ in text_references(sql, ["tanks"])}
    assert found == refs
