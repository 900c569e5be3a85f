"""Tenants on Citus with a role that is not a superuser (the usual production setup).

Citus cannot create a new distributed schema's tables in the transaction that creates the schema
for such a role (the shards are made over another connection, which cannot see the uncommitted
schema: the first test shows it). The library then commits the empty distributed schema first and
creates the tables in the creation transaction, and drops the schema again when that transaction
does not commit (a compensating action): these tests check that no failure leaves a trace, and
that the one case it cannot cover (a crash in between) is found and cleaned by orphan_schemas."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

import flask_tenants.citus
import flask_tenants.schema
from flask_tenants import citus
from flask_tenants.exceptions import TableCreationError

from ._checks import assert_no_trace, node_state
from .app import make_app, tenant_base
from .conftest import CitusDB
from .models import Tenant

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def app_url(citus_db: CitusDB) -> str:
    """The URL of a login role that owns the database (so it may create schemas and tables in
    it) but is not a superuser."""
    role = "app_" + citus_db.name
    # both propagated to the workers by Citus
    citus_db.sql(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
    citus_db.sql(f'ALTER DATABASE "{citus_db.name}" OWNER TO "{role}"')
    return citus_db.url_with("psycopg").replace("postgres@", f"{role}@", 1)


@pytest.fixture(scope="module")
def app_and_tenancy(app_url: str) -> Any:
    app, tenancy = make_app(app_url)
    tenancy.create_tenant("first")
    return app, tenancy


def test_the_one_transaction_way_fails_for_a_non_superuser(app_url: str) -> None:
    engine = create_engine(app_url, poolclass=NullPool)
    try:
        with pytest.raises(ProgrammingError, match='schema "onetx" does not exist'):
            with engine.begin() as c:
                c.execute(text("SET LOCAL citus.enable_schema_based_sharding TO on"))
                c.execute(text("CREATE SCHEMA onetx"))
                # a serial column (its sequence) is enough; so is a foreign key to a reference
                # table. (A table of plain and identity columns only would work.)
                c.execute(text("CREATE TABLE onetx.t (id serial PRIMARY KEY)"))
    finally:
        engine.dispose()


def test_a_non_superuser_creates_distributed_tenants(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    names = [f"ns{i}" for i in range(4)]
    for n in names:
        tenancy.create_tenant(n)
    engine = app.extensions["flask_tenants"].engine
    with engine.connect() as c:
        placed = citus.tenant_placements(c)
        su = c.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        assert su.scalar() is False
    assert {n: placed[n] for n in names}.keys() == set(names)
    assert all(placed[n] in citus_db.workers for n in ["first", *names])
    client = app.test_client()
    for n in names:
        assert client.post("/items", json={"name": n}, base_url=tenant_base(n)).status_code == 201
        assert client.get("/items", base_url=tenant_base(n)).json["items"] == [n]
    assert citus_db.sql(
        "SELECT repmodel FROM pg_dist_partition WHERE logicalrelid = 'plans'::regclass"
    ) == [("t",)]


def test_failing_tables_drop_the_committed_schema(
    citus_db: CitusDB, app_and_tenancy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    real = flask_tenants.schema.tenant_ddl
    monkeypatch.setattr(
        flask_tenants.schema,
        "tenant_ddl",
        lambda tables, dialect: [*real(tables, dialect), "CREATE TABLE broken (id nosuchtype)"],
    )
    with pytest.raises(TableCreationError, match="nosuchtype"):
        tenancy.create_tenant("nsbad1")
    assert_no_trace(citus_db, "nsbad1", before)


def test_a_rollback_after_the_flush_drops_the_committed_schema(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    with app.app_context():
        session = st.session_maker()
        session.add(Tenant(name="nsbad2"))
        session.flush()
        # committed already, on every node: that is what the compensation undoes
        assert all("nsbad2" in s for s in citus_db.schemas_on_every_node().values())
        session.rollback()
        session.close()
    assert_no_trace(citus_db, "nsbad2", before)


def test_a_savepoint_rollback_drops_it_when_the_outer_transaction_commits(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    with app.app_context(), st.session_maker() as session, session.begin():
        nested = session.begin_nested()
        session.add(Tenant(name="nsbad3"))
        session.flush()
        nested.rollback()
    assert_no_trace(citus_db, "nsbad3", before)


def test_a_crash_between_the_two_transactions_leaves_an_orphan_that_is_found(
    citus_db: CitusDB, app_and_tenancy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    # the process "dies" before it can compensate
    monkeypatch.setattr(flask_tenants.citus, "_drop_unless_tenant", lambda *a, **k: None)
    with app.app_context():
        session = st.session_maker()
        session.add(Tenant(name="nsbad4"))
        session.flush()
        session.rollback()
        session.close()
    monkeypatch.undo()
    engine = st.engine
    with engine.connect() as c:
        assert citus.orphan_schemas(c, st) == ["nsbad4"]
    assert citus.drop_orphan_schemas(engine, st) == ["nsbad4"]
    with engine.connect() as c:
        assert citus.orphan_schemas(c, st) == []
    assert_no_trace(citus_db, "nsbad4", before)


def test_a_python_error_after_the_tables_does_not_hang_and_leaves_nothing(
    citus_db: CitusDB, app_and_tenancy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The creating transaction still holds its locks when the failure is not the database's:
    the immediate compensation must not wait for them (it gives up after lock_timeout); the one
    at the end of the transaction drops the schema."""
    import time

    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    real = flask_tenants.citus.create_tenant_tables

    def then_fail(*args: Any, **kw: Any) -> None:
        real(*args, **kw)
        raise RuntimeError("the process fails after the tables")

    monkeypatch.setattr(flask_tenants.citus, "create_tenant_tables", then_fail)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="after the tables"):
        tenancy.create_tenant("nsbad5")
    assert time.perf_counter() - t0 < 20
    assert_no_trace(citus_db, "nsbad5", before)


async def test_the_async_door_as_a_non_superuser(
    citus_db: CitusDB, app_url: str, app_and_tenancy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same path through the Quart door (asyncpg): the side connection that commits the
    schema, and the compensation, run inside the AsyncSession's greenlet."""
    pytest.importorskip("quart")
    from quart import Quart

    from flask_tenants.aio import QuartTenants

    from .models import CitusBase, Domain

    app = Quart(__name__)
    app.config["TENANTS_DATABASE_URL"] = app_url.replace("postgresql+psycopg", "postgresql")
    tenancy = QuartTenants(app, tenant_model=Tenant, domain_model=Domain, db=CitusBase).init()
    try:
        await tenancy.create_tenant("nsa1")
        async with tenancy.state_for(app).engine.connect() as c:
            placed = await c.run_sync(citus.tenant_placements)
        assert placed["nsa1"] in citus_db.workers

        before = node_state(citus_db)
        async with tenancy.state_for(app).session_maker() as s:
            s.add(Tenant(name="nsa2"))
            await s.flush()
            await s.rollback()
        assert_no_trace(citus_db, "nsa2", before)

        real = flask_tenants.schema.tenant_ddl
        monkeypatch.setattr(
            flask_tenants.schema,
            "tenant_ddl",
            lambda tables, dialect: [*real(tables, dialect), "CREATE TABLE broken (id nosuchtype)"],
        )
        with pytest.raises(TableCreationError, match="nosuchtype"):
            await tenancy.create_tenant("nsa3")
        assert_no_trace(citus_db, "nsa3", before)
    finally:
        await tenancy.dispose()
