"""Per-tenant migrations (flask_tenants.migrations, the engine of ``flask tenants migrate``) on
distributed schemas: a revision that adds a column and an index reaches every tenant's shard on
every worker, each tenant's alembic_version table becomes a distributed table colocated with the
tenant's other tables, and a second run finds nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from flask_tenants import citus, with_db
from flask_tenants.migrations import init_tenant_migrations, migrate_tenants, read_revisions

from .app import make_app, tenant_base
from .conftest import CitusDB

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def citus_db(shared_citus_db: CitusDB) -> CitusDB:
    """A database shared with other modules: the tenants here have names of their own."""
    return shared_citus_db


REVISION = '''"""add items.color

TENANT MIGRATION
"""
from alembic import op
import sqlalchemy as sa

revision = "c0102"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("color", sa.String(20), server_default="grey"))
    op.create_index("ix_items_color", "items", ["color"])


def downgrade():
    op.drop_index("ix_items_color", "items")
    op.drop_column("items", "color")
'''


def shards(db: CitusDB, tenant: str) -> dict[str, tuple[int, int]]:
    """``{table: (shardid, port)}`` of the tenant's tables."""
    rows = db.sql(
        "SELECT sh.logicalrelid::regclass::text, sh.shardid, n.nodeport FROM pg_dist_shard sh "
        "JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node n USING (groupid) "
        "WHERE sh.logicalrelid IN (SELECT c.oid FROM pg_class c "
        "  WHERE c.relnamespace = to_regnamespace(:s))",
        s=tenant,
    )
    return {name.split(".")[-1]: (shard, port) for name, shard, port in rows}


def test_a_migration_adds_a_column_to_every_tenant_on_every_node(
    citus_db: CitusDB, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations" / "tenants"
    init_tenant_migrations(directory)
    app, tenancy = make_app(citus_db.url_with("psycopg"), TENANTS_MIGRATIONS_DIR=str(directory))
    names = [f"m{i}" for i in range(6)]
    client = app.test_client()
    for n in names:
        tenancy.create_tenant(n)
        assert client.post("/items", json={"name": n}, base_url=tenant_base(n)).status_code == 201
    st = app.extensions["flask_tenants"]
    with st.engine.connect() as c:
        placed = citus.tenant_placements(c)
    assert {placed[n] for n in names} == set(citus_db.workers)

    (directory / "versions" / "c0102_add_items_color.py").write_text(REVISION)
    report = migrate_tenants(st, names)
    assert report.ok, [(r.name, r.error) for r in report.failed]
    assert sorted(r.name for r in report.done) == names

    for n in names:
        tables = shards(citus_db, n)
        shard, port = tables["items"]
        # the shard on its worker has the column, its default and the index
        assert citus_db.sql(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(:t) "
            "AND attname = 'color' AND NOT attisdropped",
            port=port,
            t=f"{n}.items_{shard}",
        ) == [(1,)], n
        assert citus_db.sql(f"SELECT color FROM {n}.items_{shard}", port=port) == [("grey",)]  # noqa: S608
        assert citus_db.sql(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = :s AND indexname LIKE "
            "'ix_items_color%'",
            port=port,
            s=n,
        ) == [(1,)], n
        # the version table is distributed and colocated with the tenant's other tables
        assert tables["alembic_version"][1] == port
        assert placed[n].endswith(f":{port}")

    # the door sees the new column through the tenant's search_path
    with app.app_context(), with_db(names[0]) as session:
        session.execute(text("UPDATE items SET color = 'red'"))
        session.commit()
        assert session.execute(text("SELECT name, color FROM items")).all() == [(names[0], "red")]

    with st.engine.connect() as c:
        revisions = read_revisions(c, st, names)
    assert {n: r.revisions for n, r in revisions.items()} == {n: ("c0102",) for n in names}
    again = migrate_tenants(st, names)
    assert again.done == [] and len(again.skipped) == len(names)
