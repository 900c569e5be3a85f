"""Routes served on tenant hosts (acme.localhost): about the current tenant."""

from quart import Blueprint, g, jsonify
from sqlalchemy import select

from public.models import Tenant

tenant_bp = Blueprint("tenant_bp", __name__)


@tenant_bp.route("/")
async def tenant_home():
    tenant = (await g.db_session.execute(select(Tenant).filter_by(name=g.tenant))).scalar_one()
    return jsonify({"tenant": tenant.name, "since": tenant.created_at.isoformat()})
