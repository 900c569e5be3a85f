"""The sync door and the async door on the same database, the same tenants and one models module:
they must answer the same, whichever door created or changed the tenants."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.engine import make_url

from flask_tenants import FlaskTenants
from flask_tenants.exceptions import TenantExistsError, TenantNotFoundError

from .app import create_shared_tables, make_app
from .models import Domain, Tank, Tenant


def make_flask_app(url: str) -> tuple[Flask, FlaskTenants]:
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = (
        make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    )
    tenancy = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    public = tenancy.create_public_blueprint("public")
    tenant = tenancy.create_tenant_blueprint("tenant")

    @public.route("/")
    def index() -> Any:
        names = g.db_session.execute(select(Tenant.name).order_by(Tenant.name)).scalars().all()
        return jsonify({"tenant": g.tenant, "tenants": list(names)})

    @tenant.route("/tanks")
    def list_tanks() -> Any:
        tanks = g.db_session.execute(select(Tank).order_by(Tank.id)).scalars().all()
        return jsonify({"tenant": g.tenant, "tanks": [t.name for t in tanks]})

    @tenant.route("/tanks", methods=["POST"])
    def add_tank() -> Any:
        tank = Tank(name=request.get_json()["name"])
        g.db_session.add(tank)
        g.db_session.commit()
        return jsonify({"id": tank.id}), 201

    app.register_blueprint(public)
    app.register_blueprint(tenant)
    return app, tenancy


async def test_both_doors_answer_the_same(fresh_db: str) -> None:
    qapp, qt = make_app(fresh_db)
    fapp, ft = make_flask_app(fresh_db)
    try:
        await create_shared_tables(qt, qapp)
        # tenants made by either door, data written through either door
        ft.create_tenant("acme", domains=["acme.example.com"])
        await qt.create_tenant("globex", domains=["globex.example.com"])
        await qt.create_tenant("initech", domains=["initech.example.com"])
        ft.create_tenant("umbrella", domains=["umbrella.example.com"])
        fc, qc = fapp.test_client(), qapp.test_client()
        for name in ["acme", "globex", "initech", "umbrella"]:
            h = {"Host": f"{name}.example.com"}
            r1 = fc.post("/tanks", json={"name": f"{name}-sync"}, headers=h)
            r2 = await qc.post("/tanks", json={"name": f"{name}-async"}, headers=h)
            assert r1.status_code == r2.status_code == 201
        await qt.deactivate_tenant("initech")
        ft.rename_tenant("umbrella", "umbrella_corp")

        cases = [
            ("www.example.com", "/"),
            ("localhost", "/"),
            ("acme.example.com", "/tanks"),
            ("globex.example.com", "/tanks"),
            ("umbrella.example.com", "/tanks"),
            ("umbrella_corp.example.com", "/tanks"),  # the subdomain fallback, renamed
            ("initech.example.com", "/tanks"),  # deactivated: 403
            ("nobody.example.com", "/tanks"),  # 404
            ("www.example.com", "/tanks"),  # tenant route on a public host: 404
            ("acme.example.com", "/nothing"),  # 404
            ("a..b.example.com", "/tanks"),  # malformed: 404
        ]
        for host, path in cases:
            fr = fc.get(path, headers={"Host": host})
            qr = await qc.get(path, headers={"Host": host})
            assert fr.status_code == qr.status_code, (host, path, fr.status_code, qr.status_code)
            if fr.status_code == 200:
                assert fr.get_json() == await qr.get_json(), (host, path)
        r = fc.get("/tanks", headers={"Host": "acme.example.com"})
        assert r.get_json() == {"tenant": "acme", "tanks": ["acme-sync", "acme-async"]}
        assert fc.get("/tanks", headers={"Host": "initech.example.com"}).status_code == 403

        # the same exceptions, with the same messages, from both doors
        with pytest.raises(TenantNotFoundError) as sync_err:
            ft.get_tenant("nobody")
        with pytest.raises(TenantNotFoundError) as async_err:
            await qt.get_tenant("nobody")
        assert type(sync_err.value) is type(async_err.value)
        assert str(sync_err.value) == str(async_err.value)
        with pytest.raises(TenantExistsError) as sync_exists:
            ft.create_tenant("globex")
        with pytest.raises(TenantExistsError) as async_exists:
            await qt.create_tenant("acme")
        assert str(sync_exists.value).replace("globex", "acme") == str(async_exists.value)
    finally:
        await qt.dispose()
        ft.state_for(fapp).engine.dispose()
