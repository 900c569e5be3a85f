"""The two Flask apps the sync benchmark compares, and how their databases are filled.

Both serve ``GET /tanks``: the first 10 rows of a 100-row ``tanks`` table, as JSON, with the same
view code on the same Flask-SQLAlchemy session API. The *plain* app is a single-tenant Flask +
Flask-SQLAlchemy app without flask-tenants; the *tenancy* app is the same endpoint in a tenant
blueprint of flask-tenants, one ``tanks`` table per tenant schema, the tenant chosen by the host
(``t0007.example.com``, registered in the Domain table).

Gunicorn loads them with ``flask_apps:plain_app()`` / ``flask_apps:tenancy_app()`` and reads the
database URLs from ``BENCH_PLAIN_URL`` / ``BENCH_TENANCY_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Float, Integer, String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from flask_tenants import BaseDomain, BaseTenant, BaseTenantModel, FlaskTenants, db, lifecycle
from flask_tenants.context import tenant_context

ROWS_LISTED = 10

# -- the plain app ---------------------------------------------------------------------------

plain_db = SQLAlchemy()


class PlainTank(plain_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    capacity: Mapped[float] = mapped_column(Float)
    location: Mapped[str] = mapped_column(String(255))


def _tank_view(session: Any, model: Any) -> Any:
    rows = session.execute(select(model).order_by(model.id).limit(ROWS_LISTED)).scalars()
    return jsonify([{"id": t.id, "name": t.name, "capacity": t.capacity} for t in rows])


def plain_app(url: str | None = None) -> Flask:
    """The single-tenant baseline: Flask + Flask-SQLAlchemy, nothing else."""
    app = Flask("plain")
    app.config["SQLALCHEMY_DATABASE_URI"] = url or os.environ["BENCH_PLAIN_URL"]
    plain_db.init_app(app)

    @app.route("/tanks")
    def list_tanks() -> Any:
        return _tank_view(plain_db.session, PlainTank)

    return app


def served_plain_app() -> Flask:
    """The plain app for a server process of its own: without flask-tenants' process-wide
    Session listeners, which this module's imports installed (as in an app without it)."""
    from _harness import detach_tenancy

    detach_tenancy()
    return plain_app()


# -- the tenancy app -------------------------------------------------------------------------


class Tenant(BaseTenant):
    __tablename__ = "tenants"


class Domain(BaseDomain):
    __tablename__ = "domains"


class Tank(BaseTenantModel):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    capacity: Mapped[float] = mapped_column(Float)
    location: Mapped[str] = mapped_column(String(255))


def tenancy_app(url: str | None = None, **config: Any) -> Flask:
    """The same endpoint, served per tenant by flask-tenants."""
    app = Flask("tenancy")
    app.config["SQLALCHEMY_DATABASE_URI"] = url or os.environ["BENCH_TENANCY_URL"]
    app.config.update(config)
    tenants = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain, db=db)
    tenants.init()
    bp = tenants.create_tenant_blueprint("tanks")

    @bp.route("/tanks")
    def list_tanks() -> Any:
        return _tank_view(db.session, Tank)

    app.register_blueprint(bp)
    return app


def tenant_name(i: int) -> str:
    return f"t{i:05d}"


def tenant_host(i: int) -> str:
    return f"{tenant_name(i)}.example.com"


_FILL = (
    "INSERT INTO tanks (name, capacity, location) "
    "SELECT 'tank-' || g, g * 1.5, 'site-' || (g % 7) FROM generate_series(1, :n) AS g"
)


def fill_plain(app: Flask, rows: int) -> None:
    """Create the plain app's table with ``rows`` rows (idempotent)."""
    with app.app_context():
        plain_db.create_all()
        with plain_db.engine.begin() as conn:
            if conn.execute(text("SELECT count(*) FROM tanks")).scalar() == 0:
                conn.execute(text(_FILL), {"n": rows})
                conn.execute(text("ANALYZE tanks"))


def fill_tenancy(
    app: Flask, tenants: int, rows: int, batch: int = 50, progress: Any = None
) -> None:
    """Create tenants ``t00000..`` (each with a domain and ``rows`` tanks), skipping existing."""
    state = app.extensions["flask_tenants"]
    with app.app_context():
        db.create_all()
        with state.engine.connect() as conn:
            have = {r[0] for r in conn.execute(select(Tenant.__table__.c.name))}
        todo = [i for i in range(tenants) if tenant_name(i) not in have]
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            session = state.session_maker()
            try:
                for i in chunk:
                    lifecycle.create_tenant(session, state, tenant_name(i), [tenant_host(i)])
                session.commit()
            finally:
                session.close()
            for i in chunk:
                with tenant_context(tenant_name(i)), state.engine.begin() as conn:
                    conn.execute(text(_FILL), {"n": rows})
            if progress is not None:
                progress(start + len(chunk), len(todo))
