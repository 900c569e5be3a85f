"""Alembic environment of the TENANT migrations.

Every revision in versions/ runs once in every tenant schema, with that schema first on the
search_path and its own alembic_version table:

    flask tenants revision --autogenerate -m "add tanks.color"   # write a tenant revision
    flask tenants migrate [--jobs 4]                            # run it in every tenant

Shared (public) tables are migrated by Flask-Migrate from the directory above
(flask db migrate / flask db upgrade).
"""

from flask_tenants.migrations import run_tenant_env

# Keyword arguments go to Alembic's context.configure(), e.g. compare_server_default=True.
run_tenant_env()
