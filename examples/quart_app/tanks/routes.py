"""Tenant-scoped CRUD: every query runs in the schema of the host's tenant."""

from quart import Blueprint, g, jsonify, request
from sqlalchemy import select

from .models import Tank

tank_bp = Blueprint("tank_bp", __name__)


@tank_bp.route("/tanks")
async def list_tanks():
    tanks = (await g.db_session.execute(select(Tank).order_by(Tank.id))).scalars()
    return jsonify([t.to_dict() for t in tanks])


@tank_bp.route("/tanks", methods=["POST"])
async def create_tank():
    data = await request.get_json(force=True)
    tank = Tank(name=data.get("name"), capacity=data.get("capacity"), location=data.get("location"))
    g.db_session.add(tank)
    await g.db_session.commit()
    return jsonify(tank.to_dict()), 201


@tank_bp.route("/tanks/<int:tank_id>")
async def get_tank(tank_id):
    tank = await g.db_session.get(Tank, tank_id)
    if tank is None:
        return jsonify({"error": "no such tank"}), 404
    return jsonify(tank.to_dict())


@tank_bp.route("/tanks/<int:tank_id>", methods=["DELETE"])
async def delete_tank(tank_id):
    tank = await g.db_session.get(Tank, tank_id)
    if tank is None:
        return jsonify({"error": "no such tank"}), 404
    await g.db_session.delete(tank)
    await g.db_session.commit()
    return "", 204
