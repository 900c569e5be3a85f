from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_tenants.declarative import BaseTenantModel


class Tank(BaseTenantModel):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(128))
    capacity: Mapped[float | None] = mapped_column(Float)
    location: Mapped[str | None] = mapped_column(String(255))

    def to_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "capacity": self.capacity,
            "location": self.location,
        }
