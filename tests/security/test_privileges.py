"""Least privilege: the app logs in as a role that can use tenant schemas but not create or drop
schemas; an owner role owns them. Lifecycle keeps its atomicity with ``TENANTS_OWNER_ROLE``:
the DDL runs under ``SET LOCAL ROLE`` to the owner inside the same transaction as the tenant
row. Default privileges give the app role its rights on every new tenant schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from flask_tenants import with_db
from flask_tenants.exceptions import ConfigurationError, LifecycleError

from ._app import Item, Tenant, consistency, create_shared, host_of, make_app, make_engine
from .conftest import with_driver


@dataclass
class Roles:
    owner: str
    app: str
    app_url: str  # the fresh database as the app role (psycopg)


def grants_sql(owner: str, app: str, database: str) -> list[str]:
    """What an operator runs once (as a superuser or the database owner); the docs show it."""
    return [
        f"CREATE ROLE {owner} NOLOGIN",
        f"CREATE ROLE {app} LOGIN",
        f"GRANT CONNECT ON DATABASE {database} TO {app}",
        f"GRANT CREATE ON DATABASE {database} TO {owner}",  # schemas: the owner only
        f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SCHEMAS TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    ]


@pytest.fixture
def roles(fresh_db: str, admin: Engine) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    owner, app = f"ft_owner_{suffix}", f"ft_app_{suffix}"
    database = make_url(fresh_db).database
    assert database is not None
    with admin.connect() as c:
        for stmt in grants_sql(owner, app, database):
            c.execute(text(stmt))
    # the shared tables belong to the owner (created by migrations run as the owner)
    owner_engine = make_engine(with_driver(fresh_db, "psycopg"))
    with owner_engine.begin() as c:
        c.execute(text(f"SET ROLE {owner}"))
        from flask_tenants.models import shared_tables

        from ._app import SecBase

        SecBase.metadata.create_all(c, tables=shared_tables(SecBase.metadata))
    owner_engine.dispose()
    app_url = make_url(with_driver(fresh_db, "psycopg")).set(username=app)
    try:
        yield Roles(owner, app, app_url.render_as_string(False))
    finally:
        with admin.connect() as c:
            for role in (app, owner):  # one at a time (both at once trips a server error)
                c.execute(text(f"DROP OWNED BY {role} CASCADE"))
        # roles are cluster-wide: drop them once the database is gone (fresh_db drops it next)
        _pending_roles.extend([app, owner])


_pending_roles: list[str] = []


@pytest.fixture(autouse=True)
def _drop_roles(pg_server_url: str) -> Iterator[None]:
    yield
    if not _pending_roles:
        return
    engine = create_engine(with_driver(pg_server_url, "psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            for role in _pending_roles:
                try:
                    c.execute(text(f"DROP ROLE IF EXISTS {role}"))
                except DBAPIError:
                    pass  # still owns objects in a database not dropped yet: leave it
    finally:
        engine.dispose()
        _pending_roles.clear()


def _grant_shared(admin: Engine, roles: Roles) -> None:
    with admin.connect() as c:
        dml = "SELECT, INSERT, UPDATE, DELETE"
        c.execute(text(f"GRANT {dml} ON ALL TABLES IN SCHEMA public TO {roles.app}"))
        c.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {roles.app}"))


def test_app_role_cannot_create_or_drop_schemas(roles: Roles, admin: Engine) -> None:
    _grant_shared(admin, roles)
    engine = make_engine(roles.app_url)
    try:
        for ddl in ("CREATE SCHEMA intruder", "DROP SCHEMA public CASCADE"):
            with (
                engine.connect() as c,
                pytest.raises(ProgrammingError, match="permission denied|must be owner"),
            ):
                c.execute(text(ddl))
        # without TENANTS_OWNER_ROLE the lifecycle fails cleanly: nothing is left behind
        app, ext = make_app(engine)
        with app.app_context(), pytest.raises(LifecycleError, match="permission denied"):
            ext.create_tenant("acme")
        cons = consistency(admin)
        assert cons.ok or cons.tenant_tables_in_shared_schemas == [], cons
        with admin.connect() as c:
            assert c.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
            assert c.execute(text("SELECT to_regnamespace('acme')")).scalar_one() is None
    finally:
        engine.dispose()


def test_owner_role_lifecycle_and_app_role_serving(roles: Roles, admin: Engine) -> None:
    """TENANTS_OWNER_ROLE: create, rename and delete as the app's login role (a member of the
    owner role); schemas belong to the owner; the app role reads and writes tenant tables
    thanks to the default privileges; the role is back to the app's after each flush."""
    _grant_shared(admin, roles)
    with admin.connect() as c:
        c.execute(text(f"GRANT {roles.owner} TO {roles.app}"))
    engine = make_engine(roles.app_url)
    try:
        app, ext = make_app(engine, TENANTS_OWNER_ROLE=roles.owner)
        with app.app_context():
            ext.create_tenant("t00")
            ext.create_tenant("t01", domains=[host_of("t01")])
            with with_db("t00") as s:
                s.add(Item(tenant="t00", payload="x"))
                s.commit()
                assert s.execute(text("SELECT current_user")).scalar_one() == roles.app
        with admin.connect() as c:
            owners = dict(
                c.execute(
                    text(
                        "SELECT nspname, nspowner::regrole::text FROM pg_namespace "
                        "WHERE nspname IN ('t00', 't01')"
                    )
                ).all()
            )
            assert owners == {"t00": roles.owner, "t01": roles.owner}
            table_owner = c.execute(
                text("SELECT tableowner FROM pg_tables WHERE schemaname = 't00'")
            ).scalar_one()
            assert table_owner == roles.owner
        client = app.test_client()
        for t in ("t00", "t01"):
            r = client.post("/items", base_url="http://" + host_of(t))
            assert r.status_code == 200, r.data
            assert set(r.get_json()["tags"]) == {t}
        # in a request, through the ORM, with the owner role only for the flush
        with app.app_context():
            from flask_tenants.state import current_state

            session = current_state().session_maker()
            session.add(Tenant(name="t02"))
            session.flush()
            assert session.execute(text("SELECT current_user")).scalar_one() == roles.app
            session.rollback()  # atomic: the schema made as the owner goes with the row
            session.close()
            ext.rename_tenant("t01", "t03")
            ext.delete_tenant("t00")
        with admin.connect() as c:
            assert c.execute(text("SELECT to_regnamespace('t02')")).scalar_one() is None
            names = sorted(c.execute(text("SELECT name FROM tenants")).scalars())
        assert names == ["t03"]
        cons = consistency(admin)
        assert not cons.tenants_without_schema and not cons.orphan_schemas, cons
    finally:
        engine.dispose()


def test_owner_role_without_membership_says_what_to_grant(roles: Roles, admin: Engine) -> None:
    _grant_shared(admin, roles)
    engine = make_engine(roles.app_url)
    try:
        app, ext = make_app(engine, TENANTS_OWNER_ROLE=roles.owner)
        with app.app_context(), pytest.raises(ConfigurationError, match=f"GRANT {roles.owner}"):
            ext.create_tenant("acme")
        with admin.connect() as c:
            assert c.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
    finally:
        engine.dispose()


def test_owner_role_is_config_checked() -> None:
    from flask_tenants.config import TenancySettings

    assert TenancySettings.from_mapping({}).owner_role is None
    assert TenancySettings.from_mapping({"TENANTS_OWNER_ROLE": "o"}).owner_role == "o"
    with pytest.raises(ConfigurationError):
        TenancySettings.from_mapping({"TENANTS_OWNER_ROLE": 5})


_ = create_shared  # the shared tables are created by the owner here, not by create_shared
