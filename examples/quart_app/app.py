"""The example app on Quart: the same models, routes and tenants as examples/flask_app, async.

python examples/quart_app/app.py     # hypercorn; embedded PostgreSQL unless DATABASE_URL is set
DATABASE_URL=postgresql://user:pw@localhost/db python examples/quart_app/app.py
"""

import asyncio
import os
import signal
import sys

from dotenv import load_dotenv
from quart import Quart
from sqlalchemy import select

from errors import register_error_handlers
from extensions import tenancy
from flask_tenants.declarative import Base
from flask_tenants.models import shared_tables
from public.models import Tenant
from public.routes import public_bp
from tanks.routes import tank_bp
from tenants.routes import tenant_bp

load_dotenv(dotenv_path=os.path.join(os.path.dirname(__file__), ".env"))

if __name__ == "__main__" and not os.environ.get("DATABASE_URL"):
    from flask_tenants.testing.server import start_embedded_postgres

    _server = start_embedded_postgres()  # stopped and deleted at exit
    os.environ["DATABASE_URL"] = _server.url
    print(f"Started an embedded PostgreSQL at {_server.url}", flush=True)

app = Quart(__name__)
app.config.from_object("config.Config")

register_error_handlers(app)

# Initialize flask-tenants (the async door) on the app
tenancy.init_app(app)

# Create blueprints
root_public_bp = tenancy.create_public_blueprint("public")
root_tenant_bp = tenancy.create_tenant_blueprint("tenant")
root_tank_bp = tenancy.create_tenant_blueprint("tank")

root_public_bp.register_blueprint(public_bp)
root_tenant_bp.register_blueprint(tenant_bp)
root_tank_bp.register_blueprint(tank_bp)

app.register_blueprint(root_public_bp)
app.register_blueprint(root_tenant_bp)
app.register_blueprint(root_tank_bp)


async def prepare_database() -> None:
    """Create the shared tables and two demo tenants (acme, globex) if they are missing."""
    engine = tenancy.state_for(app).engine
    async with engine.begin() as conn:
        # shared tables only: tenant tables live in tenant schemas
        await conn.run_sync(
            lambda c: Base.metadata.create_all(c, tables=shared_tables(Base.metadata))
        )
    async with tenancy.with_db() as session:
        existing = set((await session.execute(select(Tenant.name))).scalars())
    for name in ("acme", "globex"):
        if name not in existing:
            await tenancy.create_tenant(name, domains=[f"{name}.localhost"])


async def main(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    await prepare_database()
    print(
        "\nflask-tenants Quart example is up. Try:\n"
        f"  curl http://localhost:{port}/                       # public schema\n"
        f"  curl http://acme.localhost:{port}/tanks             # tenant acme\n"
        f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"name\": \"t1\"}}' "
        f"http://acme.localhost:{port}/tanks\n"
        f"  curl http://globex.localhost:{port}/tanks           # tenant globex: not acme's tank\n"
        f"  curl -H 'Host: acme.localhost' http://127.0.0.1:{port}/tanks   # same, any curl\n",
        flush=True,
    )
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = "-"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(main(int(os.environ.get("PORT", "5000"))))
    sys.exit(0)
