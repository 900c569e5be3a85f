"""The original flask-tenants README's models and app wiring, as a user would write them."""

from __future__ import annotations

from flask import Blueprint, Flask, g, jsonify, request

from flask_tenants import BaseDomain, BaseTenant, create_tenancy, db
from flask_tenants import init_app as tenants_init_app
from flask_tenants.exceptions import TenantActivationError, TenantNotFoundError
from flask_tenants.models import BaseTenantModel


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


def make_app(url: str, **config: object) -> Flask:
    app = Flask(__name__)
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
