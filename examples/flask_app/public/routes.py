"""Routes served on public hosts (www.example.com, localhost): sign-up and tenant admin."""

from flask import Blueprint, g, jsonify, request

from flask_tenants.exceptions import FlaskTenantsError

from .models import Domain, Tenant

public_bp = Blueprint("public_bp", __name__)


@public_bp.route("/")
def index():
    return jsonify({"schema": g.tenant, "tenants": [t.name for t in Tenant.query.all()]})


@public_bp.route("/tenants", methods=["POST"])
def create_tenant():
    data = request.get_json(force=True)
    try:
        tenant = Tenant(name=data["name"])
        g.db_session.add(tenant)
        g.db_session.flush()  # creates the tenant's schema and tables in this transaction
        domain = Domain(
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            domain_name=data["domain"],
            is_primary=True,
        )
        g.db_session.add(domain)
        g.db_session.commit()
    except (FlaskTenantsError, KeyError) as exc:
        g.db_session.rollback()
        return jsonify({"error": str(exc)}), 400
    return jsonify({"name": tenant.name, "domain": domain.domain_name}), 201


@public_bp.route("/tenants/<name>", methods=["DELETE"])
def delete_tenant(name):
    tenant = Tenant.query.filter_by(name=name).first_or_404()
    for domain in Domain.query.filter_by(tenant_name=name).all():
        g.db_session.delete(domain)
    g.db_session.flush()
    g.db_session.delete(tenant)  # drops the tenant's schema in this transaction
    g.db_session.commit()
    return "", 204
