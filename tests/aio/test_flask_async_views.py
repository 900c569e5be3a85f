"""``async def`` views in a sync Flask app (``Flask[async]``) with the SYNC door.

Flask runs each async view to completion in an event loop of its own, inside the request's
thread; the request hooks of the sync door have already set the tenant, so ``g.tenant``,
``current_tenant()`` and ``g.db_session`` (the sync scoped session) work in the view, in the
coroutines it awaits and in the tasks it spawns (they copy the context).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, g, jsonify
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from flask_tenants import FlaskTenants, current_tenant, with_db

from .models import SHARED_TABLES, AioBase, Domain, Tank, Tenant

pytest.importorskip("asgiref", reason="Flask[async] is needed for async views")

TENANTS = ["acme", "globex", "initech", "umbrella", "hooli"]


def make_flask_app(url: str) -> tuple[Flask, FlaskTenants]:
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = (
        make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    )
    app.config["TENANTS_ENGINE_OPTIONS"] = {"pool_size": 3, "max_overflow": 0}
    tenancy = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    bp = tenancy.create_tenant_blueprint("tenant")

    async def names_in_task() -> list[str]:
        await asyncio.sleep(0)
        assert current_tenant() == g.tenant
        return list(g.db_session.execute(select(Tank.name)).scalars())

    @bp.route("/tanks")
    async def tanks() -> Any:
        await asyncio.sleep(0)
        names = list(g.db_session.execute(select(Tank.name).order_by(Tank.id)).scalars())
        path = g.db_session.execute(text("SHOW search_path")).scalar()
        spawned = await asyncio.create_task(names_in_task())
        return jsonify(
            {
                "tenant": g.tenant,
                "current": current_tenant(),
                "names": names,
                "spawned": spawned,
                "path": path,
            }
        )

    @bp.route("/tanks/<name>", methods=["POST"])
    async def add(name: str) -> Any:
        g.db_session.add(Tank(name=f"{g.tenant}-{name}"))
        g.db_session.commit()
        await asyncio.sleep(0)
        g.db_session.add(Tank(name=f"{g.tenant}-{name}-2"))  # a second transaction
        g.db_session.commit()
        return jsonify({"ok": True}), 201

    @bp.route("/other/<other>")
    async def other(other: str) -> Any:
        with with_db(other) as s:  # another tenant, explicitly, inside an async view
            names = list(s.execute(select(Tank.name)).scalars())
        mine = list(g.db_session.execute(select(Tank.name)).scalars())
        return jsonify({"other": names, "mine": mine})

    @bp.route("/boom")
    async def boom() -> Any:
        g.db_session.add(Tank(name="never"))
        g.db_session.flush()
        raise RuntimeError("async view failed")

    app.register_blueprint(bp)
    return app, tenancy


@pytest.fixture
def flask_async(fresh_db: str) -> Any:
    app, tenancy = make_flask_app(fresh_db)
    engine = tenancy.state_for(app).engine
    AioBase.metadata.create_all(engine, tables=SHARED_TABLES)
    for name in TENANTS:
        tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        with app.app_context(), with_db(name) as s:
            s.add(Tank(name=f"{name}-seed"))
            s.commit()
    yield app, tenancy
    engine.dispose()


def test_async_views_run_in_the_request_tenant(flask_async: Any) -> None:
    app, tenancy = flask_async
    c = app.test_client()
    r = c.get("/tanks", headers={"Host": "acme.example.com"})
    assert r.status_code == 200, r.data
    data = r.get_json()
    assert data["tenant"] == data["current"] == "acme"
    assert data["names"] == data["spawned"] == ["acme-seed"]
    assert data["path"].split(",")[0].strip('"') == "acme"
    r = c.get("/other/globex", headers={"Host": "acme.example.com"})
    assert r.get_json() == {"other": ["globex-seed"], "mine": ["acme-seed"]}


def test_async_view_failure_rolls_back_and_frees_the_connection(flask_async: Any) -> None:
    app, tenancy = flask_async
    app.config["PROPAGATE_EXCEPTIONS"] = False
    c = app.test_client()
    assert c.get("/boom", headers={"Host": "acme.example.com"}).status_code == 500
    r = c.get("/tanks", headers={"Host": "acme.example.com"})
    assert r.get_json()["names"] == ["acme-seed"]
    assert tenancy.state_for(app).engine.pool.checkedout() == 0


def test_async_views_from_many_threads_stay_isolated(flask_async: Any) -> None:
    """Threads (as a threaded WSGI server runs them) x async views x a pool of 3."""
    app, tenancy = flask_async
    requests = [(TENANTS[i % len(TENANTS)], i) for i in range(150)]

    def run(job: tuple[str, int]) -> list[str]:
        name, i = job
        c = app.test_client()
        h = {"Host": f"{name}.example.com"}
        if i % 3 == 0:
            assert c.post(f"/tanks/w{i}", headers=h).status_code == 201
        data = c.get("/tanks", headers=h).get_json()
        problems = []
        if data["tenant"] != name or data["current"] != name:
            problems.append(f"{name}: answered as {data['tenant']}/{data['current']}")
        for n in data["names"] + data["spawned"]:
            if not n.startswith(name + "-"):
                problems.append(f"{name} saw {n}")
        return problems

    with ThreadPoolExecutor(8) as pool:
        problems = [p for ps in pool.map(run, requests) for p in ps]
    assert problems == []
    assert tenancy.state_for(app).engine.pool.checkedout() == 0
    with app.app_context():
        for name in TENANTS:
            with with_db(name) as s:
                names = list(s.execute(select(Tank.name)).scalars())
            assert all(n.startswith(name + "-") for n in names)
            writes = sum(1 for t, i in requests if t == name and i % 3 == 0)
            assert len(names) == 1 + 2 * writes
