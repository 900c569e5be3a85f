"""The original flask-tenants README's sample app, runnable.

python examples/flask_app/app.py            # embedded PostgreSQL unless DATABASE_URL is set
DATABASE_URL=postgresql://user:pw@localhost/db flask --app examples/flask_app/app.py db upgrade
"""

import os
import sys

from dotenv import load_dotenv
from flask import Flask
from flask_migrate import Migrate

from errors import register_error_handlers
from flask_tenants import create_tenancy, db
from flask_tenants import init_app as tenants_init_app
from public.models import Domain, Tenant
from public.routes import public_bp
from tanks.routes import tank_bp
from tenants.routes import tenant_bp

load_dotenv(dotenv_path=os.path.join(os.path.dirname(__file__), ".env"))

if __name__ == "__main__" and not os.environ.get("DATABASE_URL"):
    import signal

    from flask_tenants.testing.server import start_embedded_postgres

    # stop (and delete) the throwaway server on Ctrl-C and on SIGTERM alike
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _server = start_embedded_postgres()
    os.environ["DATABASE_URL"] = _server.url
    print(f"Started an embedded PostgreSQL at {_server.url}", flush=True)

app = Flask(__name__)
app.config.from_object("config.Config")

register_error_handlers(app)

# Initialize Flask-Tenants with custom models
tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)

# Initialize Flask-Migrate
migrate = Migrate(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))

# Set up tenancy middleware
tenancy = create_tenancy(app, db, tenant_url_prefix="/_tenant")

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


def prepare_database() -> None:
    """Create the shared tables and two demo tenants (acme, globex) if they are missing."""
    from flask_migrate import upgrade

    from flask_tenants.migrations import migrate_tenants

    with app.app_context():
        if os.path.isdir(migrate.directory):
            upgrade(directory=migrate.directory)  # shared tables: migrations/versions
            migrate_tenants(tenancy.state_for(app))  # tenant schemas: migrations/tenants
        else:
            db.create_all()  # shared tables only: tenant tables live in tenant schemas
        for name in ("acme", "globex"):
            if Tenant.query.filter_by(name=name).first() is None:
                tenancy.create_tenant(name, domains=[f"{name}.localhost"])


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    prepare_database()
    print(
        "\nflask-tenants example is up. Try:\n"
        f"  curl http://localhost:{port}/                       # public schema\n"
        f"  curl http://acme.localhost:{port}/tanks             # tenant acme\n"
        f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"name\": \"t1\"}}' "
        f"http://acme.localhost:{port}/tanks\n"
        f"  curl http://globex.localhost:{port}/tanks           # tenant globex: not acme's tank\n"
        f"  curl -H 'Host: acme.localhost' http://127.0.0.1:{port}/tanks   # same, any curl\n",
        flush=True,
    )
    sys.stdout.flush()
    app.run(host="127.0.0.1", port=port, debug=False)
