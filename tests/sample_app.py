"""The original flask-tenants README's models and app wiring, as a user would write them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Flask, g, jsonify, request
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from flask_tenants import BaseDomain, BaseTenant, FlaskTenants, create_tenancy, db
from flask_tenants import init_app as tenants_init_app
from flask_tenants.context import _reset, _set
from flask_tenants.exceptions import TenantActivationError, TenantNotFoundError
from flask_tenants.models import BaseTenantModel
from flask_tenants.utils import with_db


class Tenant(BaseTenant):
    __tablename__ = "tenants"
    phone_number = db.Column(db.String(20), nullable=True)
    address = db.Column(db.String(255), nullable=True)
    deactivated = db.Column(db.Boolean(), nullable=False, default=False)


class Domain(BaseDomain):
    __tablename__ = "domains"
    tenant_id = db.Column(db.Integer, db.ForeignKey("tenants.id"), nullable=False)
    tenant_name = db.Column(db.String(128), nullable=False)
    domain_name = db.Column(db.String(255), unique=True, nullable=False)
    is_primary = db.Column(db.Boolean, default=False, nullable=False)


class Tank(BaseTenantModel):
    __abstract__ = False
    __tablename__ = "tanks"
    __table_args__ = {"info": {"tenant_specific": True}}
    id = db.Column(db.Integer, primary_key=True, autoincrement=True)
    name = db.Column(db.String(128), nullable=True)
    capacity = db.Column(db.Float, nullable=True)
    location = db.Column(db.String(255), nullable=True)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(TenantNotFoundError)
    def handle_tenant_not_found(error):  # type: ignore[no-untyped-def]
        response = jsonify(
            {"error": "TenantNotFoundError", "message": "The requested tenant was not found."}
        )
        response.status_code = 404
        return response

    @app.errorhandler(TenantActivationError)
    def handle_tenant_activation_error(error):  # type: ignore[no-untyped-def]
        response = jsonify(
            {"error": "TenantActivationError", "message": "The requested tenant is deactivated."}
        )
        response.status_code = 403
        return response


public_bp = Blueprint("public_bp", __name__)
tank_bp = Blueprint("tank_bp", __name__)


@public_bp.route("/")
def index():  # type: ignore[no-untyped-def]
    return jsonify({"tenant": g.tenant})


@public_bp.route("/tenants", methods=["POST"])
def create_tenant():  # type: ignore[no-untyped-def]
    data = request.get_json()
    tenant = Tenant(name=data["name"])
    g.db_session.add(tenant)
    g.db_session.flush()
    g.db_session.add(
        Domain(
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            domain_name=data["domain"],
            is_primary=True,
        )
    )
    g.db_session.commit()
    return jsonify({"name": tenant.name}), 201


@public_bp.route("/tenants")
def list_tenants():  # type: ignore[no-untyped-def]
    return jsonify(sorted(t.name for t in Tenant.query.all()))


@tank_bp.route("/tanks")
def list_tanks():  # type: ignore[no-untyped-def]
    tanks = g.db_session.query(Tank).order_by(Tank.id).all()
    return jsonify({"tenant": g.tenant, "tanks": [t.name for t in tanks]})


@tank_bp.route("/tanks", methods=["POST"])
def add_tank():  # type: ignore[no-untyped-def]
    tank = Tank(name=request.get_json()["name"])
    g.db_session.add(tank)
    g.db_session.commit()
    return jsonify({"id": tank.id}), 201


def make_app(url: str, _static_folder: str | None = None, **config: object) -> Flask:
    app = Flask(__name__, static_folder=_static_folder or "static", static_url_path="/static")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(config)
    register_error_handlers(app)
    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    tenancy = create_tenancy(app, db, tenant_url_prefix="/_tenant")
    root_public_bp = tenancy.create_public_blueprint("public")
    root_tank_bp = tenancy.create_tenant_blueprint("tank")
    root_public_bp.register_blueprint(public_bp)
    root_tank_bp.register_blueprint(tank_bp)
    app.register_blueprint(root_public_bp)
    app.register_blueprint(root_tank_bp)
    with app.app_context():
        db.create_all()
    app.extensions["test_tenancy"] = tenancy
    return app


# -- helpers for the test suite (not part of the README) --------------------------------------

PUBLIC_URL = "http://www.example.com"


def tenant_url(name: str, domain: str = "example.com") -> str:
    """The base URL of tenant ``name`` on its fallback sub-domain."""
    return f"http://{name}.{domain}"


def tenancy_of(app: Flask) -> FlaskTenants:
    """The FlaskTenants extension object installed on ``app``."""
    return app.extensions["flask_tenants"].extension  # type: ignore[no-any-return]


def engine_of(app: Flask) -> Engine:
    """The engine the tenancy of ``app`` uses."""
    return app.extensions["flask_tenants"].engine  # type: ignore[no-any-return]


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Collect ``(sql, parameters)`` of every statement sent to the driver inside the block."""
    log: list[tuple[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        log.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", before)


def catalog(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of a catalog query, run outside any tenant context on a short transaction."""
    token = _set(None)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        _reset(token)


def schema_names(engine: Engine) -> set[str]:
    """Every non-system schema of the database."""
    return {
        r[0]
        for r in catalog(
            engine,
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'",
        )
    }


def tables_in(engine: Engine, schema: str) -> set[str]:
    """The ordinary tables of ``schema``."""
    return {
        r[0]
        for r in catalog(
            engine,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p')",
            s=schema,
        )
    }


def seed_tanks(app: Flask, rows: dict[str, int]) -> None:
    """Create each tenant of ``rows`` (domain ``<name>.example.com``) with that many tanks,
    named ``<tenant>-<i>`` so that any row tells which schema it came from."""
    tenancy = tenancy_of(app)
    for name, count in rows.items():
        tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        with app.app_context(), with_db(name) as session:
            session.add_all(Tank(name=f"{name}-{i}", capacity=float(i)) for i in range(count))
            session.commit()


def make_app_with(
    url: str,
    tenant_blueprints: Iterable[Blueprint] = (),
    public_blueprints: Iterable[Blueprint] = (),
    static_folder: str | None = None,
    **config: object,
) -> Flask:
    """:func:`make_app` plus extra blueprints inside a tenant and a public root blueprint."""
    app = make_app(url, _static_folder=static_folder, **config)
    tenancy = tenancy_of(app)
    extra_tenant = tenancy.create_tenant_blueprint("extra_tenant")
    extra_public = tenancy.create_public_blueprint("extra_public")
    for bp in tenant_blueprints:
        extra_tenant.register_blueprint(bp)
    for bp in public_blueprints:
        extra_public.register_blueprint(bp)
    app.register_blueprint(extra_tenant)
    app.register_blueprint(extra_public)
    return app
