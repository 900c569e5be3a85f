"""The Quart door's mechanics: the core hook on asyncpg, the request's AsyncSession, routing,
websockets, URL building, the 0.4 entry points and configuration errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart import Quart, g, jsonify, url_for, websocket
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

import flask_tenants
import flask_tenants.aio as aio
from flask_tenants.aio import (
    ConfigurationError,
    QuartTenants,
    async_database_url,
    create_tenancy,
    current_tenant,
    init_app,
    tenant_context,
    with_db,
)

from .app import create_shared_tables, make_app
from .models import AioBase, Domain, Tank, Tenant


def test_same_public_names_as_the_sync_door() -> None:
    sync_names = set(flask_tenants.__all__) - {"db"}  # Flask-SQLAlchemy has no async twin
    assert sync_names <= set(aio.__all__), sync_names - set(aio.__all__)
    for name in ("BaseTenant", "BaseDomain", "BaseTenantModel"):
        assert getattr(aio, name) is getattr(flask_tenants.declarative, name)
    for name in ("TenantNotFoundError", "TenantExistsError", "tenant_context"):
        assert getattr(aio, name) is getattr(flask_tenants, name)
    assert aio.FlaskTenants is aio.QuartTenants


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgres://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg"),
    ],
)
def test_database_urls_map_to_an_async_driver(url: str, expected: str) -> None:
    assert async_database_url(url).drivername == expected


def test_non_postgres_urls_are_refused_with_advice() -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        async_database_url("sqlite:///x.db")
    with pytest.raises(ConfigurationError, match="asyncio"):
        async_database_url("postgresql+pg9000://u@h/db")


def test_configuration_errors_say_what_to_do() -> None:
    app = Quart(__name__)
    with pytest.raises(ConfigurationError, match="TENANTS_DATABASE_URL"):
        QuartTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    app.config["TENANTS_DATABASE_URL"] = "postgresql://u@127.0.0.1:1/x"
    QuartTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    with pytest.raises(ConfigurationError, match="already initialised"):
        QuartTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    with pytest.raises(ConfigurationError, match="init_app"):
        QuartTenants().state_for(Quart(__name__))


async def test_every_transaction_starts_with_the_hook_on_asyncpg(quart_app: Any) -> None:
    """Record, per connection, the statements after each BEGIN of a multi-commit request."""
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    engine = tenancy.state_for(app).engine.sync_engine
    transactions: list[list[str]] = [[]]

    def on_end(conn: Any) -> None:
        transactions.append([])

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        transactions[-1].append(statement)

    client = app.test_client()
    await client.get("/tanks", headers={"Host": "acme.example.com"})  # host lookup cached
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    event.listen(engine, "before_cursor_execute", on_statement)
    r = await client.post("/multi", headers={"Host": "acme.example.com"})
    assert r.status_code == 200
    data = await r.get_json()
    assert data["names"].count("acme-m0") == 3
    assert all(p.split(",")[0].strip('"') == "acme" for p in data["paths"])
    work = [t for t in transactions if t]
    assert len(work) >= 6  # three commits of a write, three of a read
    for statements in work:
        assert "set_config('search_path'" in statements[0], statements


async def test_the_request_session_is_an_asyncsession_closed_afterwards(
    quart_app: Any,
) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    seen: dict[str, Any] = {}
    bp = tenancy.create_tenant_blueprint("probe")

    @bp.route("/probe")
    async def probe() -> Any:
        seen["session"] = g.db_session
        seen["current"] = current_tenant()
        await g.db_session.execute(text("SELECT 1"))
        return jsonify({"in_transaction": g.db_session.in_transaction()})

    app.register_blueprint(bp)
    client = app.test_client()
    r = await client.get("/probe", headers={"Host": "acme.example.com"})
    assert await r.get_json() == {"in_transaction": True}
    assert isinstance(seen["session"], AsyncSession) and seen["current"] == "acme"
    assert not seen["session"].in_transaction()  # closed by teardown
    assert current_tenant() is None  # the request's context did not leak into ours
    # a view that raised, and one whose client went away, give their connection back too
    assert (await client.get("/boom", headers={"Host": "acme.example.com"})).status_code == 500
    task = asyncio.ensure_future(client.get("/slowquery", headers={"Host": "acme.example.com"}))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert tenancy.state_for(app).engine.pool.checkedout() == 0
    r = await client.get("/tanks", headers={"Host": "acme.example.com"})
    assert await r.get_json() == {"tenant": "acme", "tanks": []}  # /boom's row rolled back


async def test_with_db_and_tenant_context_in_background_work(quart_app: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme")
    await tenancy.create_tenant("globex")
    async with app.app_context():
        async with with_db("acme") as s:
            s.add(Tank(name="a"))
            await s.commit()
            assert current_tenant() == "acme"
            async with with_db("globex") as inner:  # nested: its own tenant, then back
                assert (await inner.execute(select(Tank))).all() == []
            assert current_tenant() == "acme"
            assert (await s.execute(select(Tank.name))).scalars().all() == ["a"]
        assert current_tenant() is None
        async with tenant_context("globex"):
            async with with_db() as s:
                assert (await s.execute(select(Tank))).all() == []
    with pytest.raises(TypeError):
        async with with_db(42):  # type: ignore[arg-type]
            pass


async def test_strict_slash_redirect_and_url_for_hide_the_prefix(quart_app: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    bp = tenancy.create_tenant_blueprint("extra")

    @bp.route("/folder/")
    async def folder() -> Any:
        return jsonify(
            {"self": url_for("extra.folder"), "ext": url_for("extra.folder", _external=True)}
        )

    app.register_blueprint(bp)
    client = app.test_client()
    r = await client.get("/folder", headers={"Host": "acme.example.com"})
    assert r.status_code == 308 and r.headers["Location"].endswith("/folder/")
    assert "_tenant" not in r.headers["Location"]
    r = await client.get("/folder/", headers={"Host": "acme.example.com"})
    assert await r.get_json() == {"self": "/folder/", "ext": "http://acme.example.com/folder/"}


async def test_routing_decisions_are_remembered_but_never_another_hosts_redirect(
    quart_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tenancy = quart_app
    for name in ("acme", "globex"):
        await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
    bp = tenancy.create_tenant_blueprint("extra")

    @bp.route("/folder/")
    async def folder() -> Any:
        return jsonify({"tenant": g.tenant})

    app.register_blueprint(bp)
    client = app.test_client()
    binds: list[str] = []
    original = app.url_map.bind

    def counting_bind(*args: Any, **kw: Any) -> Any:
        binds.append(str(args[0]) if args else "")
        return original(*args, **kw)

    monkeypatch.setattr(app.url_map, "bind", counting_bind)
    for host in ["acme.example.com", "globex.example.com"] * 3:
        r = await client.get("/folder/", headers={"Host": host})
        assert (await r.get_json()) == {"tenant": host.split(".")[0]}
    # the routing middleware bound the URL map once for the path, not once per request
    assert len(binds) == 1, binds
    for host in ["acme.example.com", "globex.example.com", "acme.example.com"]:
        r = await client.get("/folder", headers={"Host": host})
        assert r.status_code == 308
        location = r.headers["Location"]
        assert location.endswith("/folder/") and "_tenant" not in location
        assert location.startswith("/") or location.startswith(f"http://{host}/"), location


async def test_websockets_run_in_the_tenant_schema(quart_app: Any) -> None:
    app, tenancy = quart_app
    await tenancy.create_tenant("acme", domains=["acme.example.com"])
    async with tenancy.with_db("acme") as s:
        s.add(Tank(name="ws-tank"))
        await s.commit()
    bp = tenancy.create_tenant_blueprint("ws")

    @bp.websocket("/ws")
    async def ws() -> None:
        await websocket.receive()
        names = (await g.db_session.execute(select(Tank.name))).scalars().all()
        await websocket.send_json({"tenant": g.tenant, "names": names})

    app.register_blueprint(bp)
    async with app.test_client().websocket("/ws", headers={"Host": "acme.example.com"}) as sock:
        await sock.send("hi")
        assert await sock.receive_json() == {"tenant": "acme", "names": ["ws-tank"]}


async def test_the_04_entry_points(fresh_db: str) -> None:
    app = Quart(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = fresh_db  # a plain URL: asyncpg
    init_app(app, tenant_model=Tenant, domain_model=Domain)
    with pytest.raises(ConfigurationError, match="once"):
        init_app(app, tenant_model=Tenant, domain_model=Domain)
    tenancy = create_tenancy(app, AioBase, tenant_url_prefix="/_t")
    bp = tenancy.create_tenant_blueprint("t")

    @bp.route("/where")
    async def where() -> Any:
        return jsonify({"tenant": g.tenant, "url": url_for("t.where")})

    app.register_blueprint(bp)
    try:
        await create_shared_tables(tenancy, app)
        await tenancy.create_tenant("acme", domains=["acme.example.com"])
        r = await app.test_client().get("/where", headers={"Host": "acme.example.com"})
        assert await r.get_json() == {"tenant": "acme", "url": "/where"}
        r = await app.test_client().get("/_t/where", headers={"Host": "www.example.com"})
        assert r.status_code == 404
    finally:
        await tenancy.dispose()


def test_factory_style_needs_no_app_context() -> None:
    tenancy = QuartTenants(tenant_model=Tenant, domain_model=Domain)
    app = Quart(__name__)
    app.config["TENANTS_DATABASE_URL"] = "postgresql://u@127.0.0.1:1/x"
    tenancy.init_app(app)
    assert tenancy._lifecycle_state() is tenancy.state_for(app)
    assert make_app  # the shared test app builder is importable alongside
