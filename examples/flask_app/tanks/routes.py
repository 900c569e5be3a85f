"""Tenant-scoped CRUD: every query runs in the schema of the host's tenant."""

from flask import Blueprint, g, jsonify, request

from .models import Tank

tank_bp = Blueprint("tank_bp", __name__)


@tank_bp.route("/tanks")
def list_tanks():
    tanks = g.db_session.query(Tank).order_by(Tank.id).all()
    return jsonify([t.to_dict() for t in tanks])


@tank_bp.route("/tanks", methods=["POST"])
def create_tank():
    data = request.get_json(force=True)
    tank = Tank(name=data.get("name"), capacity=data.get("capacity"), location=data.get("location"))
    g.db_session.add(tank)
    g.db_session.commit()
    return jsonify(tank.to_dict()), 201


@tank_bp.route("/tanks/<int:tank_id>")
def get_tank(tank_id):
    tank = g.db_session.get(Tank, tank_id)
    if tank is None:
        return jsonify({"error": "no such tank"}), 404
    return jsonify(tank.to_dict())


@tank_bp.route("/tanks/<int:tank_id>", methods=["DELETE"])
def delete_tank(tank_id):
    tank = g.db_session.get(Tank, tank_id)
    if tank is None:
        return jsonify({"error": "no such tank"}), 404
    g.db_session.delete(tank)
    g.db_session.commit()
    return "", 204
