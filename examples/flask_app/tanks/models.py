from flask_tenants.models import BaseTenantModel, db


class Tank(BaseTenantModel):
    __abstract__ = False
    __tablename__ = "tanks"
    __table_args__ = {"info": {"tenant_specific": True}}
    id = db.Column(db.Integer, primary_key=True, autoincrement=True)
    name = db.Column(db.String(128), nullable=True)
    capacity = db.Column(db.Float, nullable=True)
    location = db.Column(db.String(255), nullable=True)

    def to_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "capacity": self.capacity,
            "location": self.location,
        }
