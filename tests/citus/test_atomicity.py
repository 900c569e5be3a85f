"""Tenant creation on Citus is atomic (as a superuser, the way the library connects by default
in these tests): a failure at any point -- in the tables' DDL, on a worker after the schema was
made, in the application after the flush, inside a savepoint -- leaves no tenant row and no
distributed schema, shard or metadata on any node. Each node is read directly."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import flask_tenants.schema
from flask_tenants.exceptions import TableCreationError

from ._checks import assert_no_trace, node_state
from .app import make_app, tenant_base
from .conftest import CitusDB
from .models import Tenant

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def citus_db(shared_citus_db: CitusDB) -> CitusDB:
    """A database shared with other modules: the tenants here have names of their own."""
    return shared_citus_db


@pytest.fixture(scope="module")
def app_and_tenancy(citus_db: CitusDB) -> Any:
    app, tenancy = make_app(citus_db.url_with("psycopg"))
    tenancy.create_tenant("ok1")  # the reference table exists before the failures
    return app, tenancy


def distributed_now(session: Any, name: str) -> bool:
    return bool(
        session.execute(
            text(
                "SELECT count(*) FROM pg_dist_schema ds JOIN pg_namespace n "
                "ON n.oid = ds.schemaid WHERE n.nspname = :n"
            ),
            {"n": name},
        ).scalar()
    )


def test_a_failing_table_ddl_leaves_nothing(
    citus_db: CitusDB, app_and_tenancy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    real = flask_tenants.schema.tenant_ddl

    def failing(tables: Any, dialect: Any) -> list[str]:
        # the real tables (items, notes: shards are made) and then a statement that fails
        return [*real(tables, dialect), "CREATE TABLE broken (id nosuchtype)"]

    monkeypatch.setattr(flask_tenants.schema, "tenant_ddl", failing)
    with pytest.raises(TableCreationError, match="nosuchtype"):
        tenancy.create_tenant("bad1", domains=["bad1.example.com"])
    assert_no_trace(citus_db, "bad1", before)


def test_a_worker_error_after_creation_rolls_everything_back(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    with app.app_context():
        session = st.session_maker()
        try:
            session.add(Tenant(name="bad2"))
            session.flush()
            assert distributed_now(session, "bad2")
            session.execute(text("SET LOCAL search_path TO bad2, public"))
            session.execute(text("INSERT INTO items (name, plan_id) VALUES ('a', 1)"))
            with pytest.raises(IntegrityError, match="foreign key"):
                # plan 999 does not exist: the worker holding the shard refuses
                session.execute(text("INSERT INTO items (name, plan_id) VALUES ('b', 999)"))
            session.rollback()
        finally:
            session.close()
    assert_no_trace(citus_db, "bad2", before)


def test_an_application_error_after_the_flush_rolls_everything_back(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    with app.app_context(), pytest.raises(RuntimeError, match="after the flush"):
        with st.session_maker() as session, session.begin():
            session.add(Tenant(name="bad3"))
            session.flush()
            assert distributed_now(session, "bad3")
            raise RuntimeError("the application fails after the flush")
    assert_no_trace(citus_db, "bad3", before)


def test_a_savepoint_rollback_removes_the_tenant_but_keeps_the_rest(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    before = node_state(citus_db)
    st = app.extensions["flask_tenants"]
    with app.app_context(), st.session_maker() as session, session.begin():
        nested = session.begin_nested()
        session.add(Tenant(name="bad4"))
        session.flush()
        assert distributed_now(session, "bad4")
        nested.rollback()
        assert not distributed_now(session, "bad4")
        # the sharding setting went back with the savepoint: a schema made now stays local
        assert session.execute(text("SHOW citus.enable_schema_based_sharding")).scalar() == "off"
    assert_no_trace(citus_db, "bad4", before)


def test_after_the_failures_a_tenant_is_created_and_served(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    tenancy.create_tenant("bad1")  # the names of failed creations are free again
    c = app.test_client()
    assert c.post("/items", json={"name": "x"}, base_url=tenant_base("bad1")).status_code == 201
    assert c.get("/items", base_url=tenant_base("bad1")).json["items"] == ["x"]
    for port, schemas in citus_db.schemas_on_every_node().items():
        assert "bad1" in schemas, port
