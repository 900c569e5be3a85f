"""Routes served on tenant hosts (acme.localhost): about the current tenant."""

from flask import Blueprint, g, jsonify

from public.models import Tenant

tenant_bp = Blueprint("tenant_bp", __name__)


@tenant_bp.route("/")
def tenant_home():
    tenant = Tenant.query.filter_by(name=g.tenant).one()
    return jsonify({"tenant": tenant.name, "since": tenant.created_at.isoformat()})
