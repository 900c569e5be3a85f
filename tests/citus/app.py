"""The Flask app of the Citus tests: plain SQLAlchemy models on the sync door, README-shaped."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, request
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from flask_tenants import FlaskTenants

from .models import SHARED_TABLES, CitusBase, Domain, Item, Plan, Tenant


def make_app(url: str, plans: int = 2, **config: Any) -> tuple[Flask, FlaskTenants]:
    """The app on ``url``, with the shared tables created and ``plans`` plans in them."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            CitusBase.metadata.create_all(conn, tables=SHARED_TABLES)
            have = conn.execute(select(Plan.id)).scalars().all()
            for i in range(1, plans + 1):
                if i not in have:
                    conn.execute(Plan.__table__.insert().values(id=i, name=f"plan-{i}"))
    finally:
        engine.dispose()
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = url
    app.config.update(config)
    tenancy = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain, db=CitusBase).init()
    bp = tenancy.create_tenant_blueprint("tenant")

    @bp.route("/items")
    def list_items() -> Any:
        rows = g.db_session.execute(select(Item.name).order_by(Item.id)).scalars().all()
        return jsonify({"tenant": g.tenant, "items": rows})

    @bp.route("/items", methods=["POST"])
    def add_item() -> Any:
        data = request.get_json()
        item = Item(name=data["name"], plan_id=data.get("plan", 1))
        g.db_session.add(item)
        g.db_session.commit()
        return jsonify({"id": item.id}), 201

    @bp.route("/plan-names")
    def plan_names() -> Any:
        # a join between a tenant table and the reference table, pushed down to the worker
        rows = g.db_session.execute(
            select(Item.name, Plan.name).join(Plan, Plan.id == Item.plan_id).order_by(Item.id)
        ).all()
        return jsonify([list(r) for r in rows])

    app.register_blueprint(bp)
    return app, tenancy


def tenant_base(name: str) -> str:
    return f"http://{name}.example.com"
