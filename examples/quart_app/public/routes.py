"""Routes served on public hosts (www.example.com, localhost): sign-up and tenant admin."""

from quart import Blueprint, g, jsonify, request
from sqlalchemy import select

from extensions import tenancy
from flask_tenants.aio import FlaskTenantsError, TenantNotFoundError

from .models import Tenant

public_bp = Blueprint("public_bp", __name__)


@public_bp.route("/")
async def index():
    names = (await g.db_session.execute(select(Tenant.name).order_by(Tenant.name))).scalars()
    return jsonify({"schema": g.tenant, "tenants": list(names)})


@public_bp.route("/tenants", methods=["POST"])
async def create_tenant():
    data = await request.get_json(force=True)
    try:
        # row, schema, tables and domain in one transaction: all or nothing
        tenant = await tenancy.create_tenant(data["name"], domains=[data["domain"]])
    except (FlaskTenantsError, KeyError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify({"name": tenant.name, "domain": data["domain"]}), 201


@public_bp.route("/tenants/<name>", methods=["DELETE"])
async def delete_tenant(name):
    try:
        await tenancy.delete_tenant(name)  # domains, row and schema, atomically
    except TenantNotFoundError:
        return jsonify({"error": f"no tenant {name!r}"}), 404
    return "", 204
