"""One test per bug of the original flask-tenants (0.4/0.5) that we reproduced: each must be
impossible here. The names say which bug."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError

from flask_tenants import tenant_context, with_db
from flask_tenants.exceptions import DomainError, InvalidTenantNameError

from ._app import Domain, Item, Tenant, consistency, create_shared, host_of, make_app, make_engine
from .conftest import with_driver

INJECTIONS = [
    "acme'; DROP SCHEMA public CASCADE; --",
    't00"; DROP TABLE tenants; --',
    "x' OR '1'='1",
    "t00, public",
    '"t00", "t01"',
    "pg_catalog",
]


@dataclass
class Env:
    app: Any
    ext: Any
    engine: Engine
    admin: Engine
    statements: list[str]

    def client(self) -> Any:
        return self.app.test_client()

    def get(self, host: str, path: str = "/items", **kw: Any) -> Any:
        return self.client().get(path, environ_overrides={"HTTP_HOST": host}, **kw)

    def intact(self) -> None:
        """The public schema and the tenants survived, consistent."""
        with self.admin.connect() as c:
            assert c.execute(text("SELECT to_regclass('public.tenants')")).scalar() is not None
            assert c.execute(text("SELECT to_regclass('public.items')")).scalar() is not None
            assert c.execute(text("SELECT count(*) FROM tenants")).scalar_one() >= 2
        cons = consistency(self.admin)
        assert not cons.tenants_without_schema and not cons.orphan_schemas, cons


def _env(url: str, admin: Engine, **engine_kw: Any) -> Env:
    engine = make_engine(url, **engine_kw)
    create_shared(engine)
    app, ext = make_app(engine, admin)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        statements.append(statement)

    with app.app_context():
        for name in ("t00", "t01"):
            ext.create_tenant(name, domains=[] if name == "t00" else [host_of(name)])
            with with_db(name) as s:
                s.add_all([Item(tenant=name, payload="seed") for _ in range(2)])
                s.commit()
    statements.clear()
    return Env(app, ext, engine, admin, statements)


@pytest.fixture
def env(fresh_db: str, admin: Engine) -> Iterator[Env]:
    e = _env(with_driver(fresh_db, "psycopg"), admin)
    try:
        yield e
    finally:
        e.engine.dispose()


def _no_input_in_sql(env: Env, payload: str) -> None:
    for sql in env.statements:
        assert payload not in sql and payload.lower() not in sql, sql


# -- SQL injection ----------------------------------------------------------------------------


def test_sql_injection_through_host(env: Env) -> None:
    for payload in INJECTIONS:
        for host in (payload, f"{payload}.example.com", f"t00.example.com{payload}"):
            r = env.get(host)
            assert r.status_code == 404, (host, r.status_code, r.data)
            _no_input_in_sql(env, payload)
    env.intact()


def test_sql_injection_through_tenant_header(env: Env) -> None:
    for payload in INJECTIONS:
        for header in ("X-Tenant", "X-Tenant-Name", "Tenant", "X-Forwarded-Host"):
            r = env.get("t00.example.com", headers={header: payload})
            assert r.status_code == 200 and set(r.get_json()["tags"]) == {"t00"}, r.data
            r = env.get("www.example.com", "/_tenant/items", headers={header: payload})
            assert r.status_code == 404
            _no_input_in_sql(env, payload)
    env.intact()


def test_sql_injection_through_tenant_names(env: Env) -> None:
    with env.app.app_context():
        for payload in INJECTIONS:
            env.statements.clear()
            with pytest.raises(InvalidTenantNameError):
                env.ext.create_tenant(payload)
            with pytest.raises(InvalidTenantNameError):
                env.ext.rename_tenant("t00", payload)
            with pytest.raises(InvalidTenantNameError):
                with with_db(payload):
                    pass
            with pytest.raises(InvalidTenantNameError):
                tenant_context(payload)
            _no_input_in_sql(env, payload)
    env.intact()


# -- choosing a tenant from the public host ---------------------------------------------------


def test_tenant_header_does_not_pick_a_tenant_on_the_public_host(env: Env) -> None:
    for host in ("www.example.com", "localhost", "127.0.0.1", "example.com"):
        for path in ("/items", "/_tenant/items"):
            r = env.get(host, path, headers={"X-Tenant": "t00", "X-Tenant-Name": "t00"})
            assert r.status_code == 404, (host, path, r.data)
        r = env.get(host, "/", headers={"X-Tenant": "t00"})
        if host == "example.com":  # not public unless configured; not a tenant's either
            assert r.status_code == 404
            continue
        assert r.get_json()["tenant"] == "public" and set(r.get_json()["tags"]) == {"public"}


def test_tenant_header_identification_needs_trusted_proxies(fresh_db: str, admin: Engine) -> None:
    """Opting in to a tenant header without saying which proxies may set it refuses to start;
    with them, the header from any other peer is ignored."""
    from flask_tenants.exceptions import ConfigurationError

    engine = make_engine(with_driver(fresh_db, "psycopg"))
    try:
        create_shared(engine)
        with pytest.raises(ConfigurationError):
            make_app(engine, TENANTS_IDENTIFICATION=["header", "domain", "subdomain"])
        app, ext = make_app(
            engine,
            TENANTS_IDENTIFICATION=["header", "domain", "subdomain"],
            TENANTS_TRUSTED_PROXIES=["10.0.0.1"],
        )
        with app.app_context():
            ext.create_tenant("t00")
        c = app.test_client()
        r = c.get(
            "/items",
            environ_overrides={"HTTP_HOST": "www.example.com", "REMOTE_ADDR": "203.0.113.9"},
            headers={"X-Tenant": "t00"},
        )
        assert r.status_code == 404, r.data
    finally:
        engine.dispose()


def test_tenant_url_prefix_does_not_pick_a_tenant_on_the_public_host(env: Env) -> None:
    for host in ("www.example.com", "localhost", "127.0.0.1:5000", "[::1]", "example.com"):
        for path in ("/_tenant/items", "/_tenant/items?tenant=t00", "/_tenant//items"):
            r = env.client().get(path, environ_overrides={"HTTP_HOST": host}, follow_redirects=True)
            assert r.status_code == 404, (host, path, r.status_code)


def test_bare_domains_and_ip_addresses_are_not_tenants(env: Env) -> None:
    with env.app.app_context():
        env.ext.create_tenant("example")
        env.ext.create_tenant("localhost2")
        # an apex domain (example.com) is a fine custom domain; these are not
        for bare in ("example", "localhost", "127.0.0.1", "www.example.com", "[::1]"):
            with pytest.raises(DomainError):
                env.ext.add_domain("example", bare)
    for host in ("example.com", "example", "127.0.0.1", "127.0.0.1:80", "[::1]:5000", "10.0.0.1"):
        assert env.get(host).status_code == 404, host  # no tenant route on public hosts
        r = env.get(host, "/")  # public, or (example.com: no such domain) 404: never 'example'
        assert r.status_code == 404 if host == "example.com" else r.get_json()["tenant"] == "public"


# -- names ------------------------------------------------------------------------------------


def test_upper_case_names_never_write_into_public(env: Env) -> None:
    with env.app.app_context():
        with pytest.raises(InvalidTenantNameError, match="upper-case"):
            env.ext.create_tenant("T02")
    # an upper-case host is the same (lower-case) tenant, never the public schema
    r = env.client().post("/items", environ_overrides={"HTTP_HOST": "T00.EXAMPLE.COM"})
    assert r.status_code == 200 and set(r.get_json()["tags"]) == {"t00"}, r.data
    with env.admin.connect() as c:
        assert c.execute(text("SELECT count(*) FROM public.items")).scalar_one() == 1  # the trap
        assert c.execute(text("SELECT to_regnamespace('T02')")).scalar() is None


def test_hyphenated_names_do_not_give_500(env: Env) -> None:
    with env.app.app_context():
        with pytest.raises(InvalidTenantNameError, match="only a-z"):
            env.ext.create_tenant("my-shop")
        env.ext.create_tenant("my_shop", domains=["my-shop.example.com"])
    assert env.get("my-shop.example.com").get_json()["tenant"] == "my_shop"
    assert env.get("other-shop.example.com").status_code == 404
    assert env.get("-bad-.example.com").status_code == 404


# -- lifecycle --------------------------------------------------------------------------------


def test_rolled_back_delete_keeps_the_schema_and_the_row(env: Env) -> None:
    from flask_tenants import lifecycle

    with env.app.app_context():
        st = env.ext.state_for(env.app)
        session = st.session_maker()
        lifecycle.delete_tenant(session, st, "t00")
        session.rollback()
        session.close()
    with env.admin.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tenants WHERE name = 't00'")).scalar() == 1
        assert c.execute(text("SELECT count(*) FROM t00.items")).scalar() == 2
    r = env.get("t00.example.com")
    assert r.status_code == 200 and set(r.get_json()["tags"]) == {"t00"}


def test_failed_creation_leaves_no_orphan_schema(env: Env) -> None:
    with env.app.app_context():
        with pytest.raises(DomainError):  # refused before any DDL
            env.ext.create_tenant("t05", domains=[host_of("t01")])
        st = env.ext.state_for(env.app)
        session = st.session_maker()
        session.add(Tenant(name="t06"))
        session.flush()  # schema and tables made here
        session.add(Domain(tenant_name="t06", domain_name=host_of("t01")))  # taken
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
        session.close()
    with env.admin.connect() as c:
        for name in ("t05", "t06"):
            assert c.execute(text("SELECT to_regnamespace(:n)"), {"n": name}).scalar() is None
    env.intact()


def test_second_app_instance_does_not_break_creation(env: Env) -> None:
    app2, ext2 = make_app(env.engine, env.admin)
    with app2.app_context():
        ext2.create_tenant("t02")
    with env.app.app_context():
        env.ext.create_tenant("t04")
    for app in (env.app, app2):
        for t in ("t02", "t04"):
            r = app.test_client().get("/items", environ_overrides={"HTTP_HOST": host_of(t)})
            assert r.status_code == 200 and r.get_json()["tenant"] == t, r.data
    env.intact()


def test_pool_of_size_1_does_not_hang_on_lifecycle(fresh_db: str, admin: Engine) -> None:
    e = _env(with_driver(fresh_db, "psycopg"), admin, pool_size=1, max_overflow=0, pool_timeout=5)
    try:

        @e.app.route("/_tenant/provision/<name>", methods=["POST"])
        def provision(name: str) -> Any:
            from flask import g

            g.db_session.execute(text("SELECT 1"))
            g.db_session.commit()  # gives the one pooled connection back
            e.ext.create_tenant(name)
            e.ext.rename_tenant(name, name + "_r")
            e.ext.delete_tenant(name + "_r")
            return {"ok": True}

        e.ext._tenant_bps.add("provision")  # noqa: SLF001 - scope the route as a tenant one
        t0 = time.monotonic()
        with e.app.app_context():
            e.ext.create_tenant("t02", domains=["t02-shop.example.com"])
            e.ext.add_domain("t02", "t02-other.example.com")
            e.ext.rename_tenant("t02", "t03")
            e.ext.delete_tenant("t03")
        r = e.client().post("/provision/t08", environ_overrides={"HTTP_HOST": "t00.example.com"})
        assert r.status_code == 200, r.data
        assert time.monotonic() - t0 < 5, "waited for a second pooled connection"
        assert e.engine.pool.checkedout() == 0
    finally:
        e.engine.dispose()


@pytest.mark.parametrize("domain_style", ["fk_on_update_cascade", "original_readme"])
def test_rename_with_domains_foreign_key_and_no_deadlock(
    fresh_db: str, admin: Engine, domain_style: str
) -> None:
    """Rename a tenant with domains -- the FK to tenants.name (ON UPDATE CASCADE) or the
    original README's Domain (tenant_id FK, tenant_name copied) -- while requests hit it."""
    if domain_style == "original_readme":
        from tests.sample_app import make_app as readme_app

        app = readme_app(with_driver(fresh_db, "psycopg"))
        ext = app.extensions["test_tenancy"]
        with app.app_context():
            ext.create_tenant("acme", domains=["acme.example.com", "shop.acme.test"])
            ext.rename_tenant("acme", "acme_new")
            r = app.test_client().get("/tanks", base_url="http://shop.acme.test")
            assert r.status_code == 200 and r.get_json()["tenant"] == "acme_new", r.data
        return
    e = _env(with_driver(fresh_db, "psycopg"), admin, pool_size=6)
    try:
        with e.app.app_context():
            e.ext.add_domain("t01", "extra.example.org")
        stop = threading.Event()
        errors: list[str] = []

        def hammer() -> None:
            c = e.app.test_client()
            while not stop.is_set():
                r = c.get("/items", environ_overrides={"HTTP_HOST": "extra.example.org"})
                if r.status_code >= 500 and "Deadlock" in r.get_data(as_text=True):
                    errors.append(r.get_data(as_text=True))

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.2)
            t0 = time.monotonic()
            with e.app.app_context():
                e.ext.rename_tenant("t01", "t09")
            took = time.monotonic() - t0
            time.sleep(0.2)
            stop.set()
            for f in futures:
                f.result()
        assert not errors, errors[:3]
        assert took < 5, f"rename waited {took:.1f}s"
        e.ext.state_for(e.app).resolver.invalidate()
        r = e.get("extra.example.org")
        assert r.get_json()["tenant"] == "t09" and set(r.get_json()["tags"]) == {"t01"}
        with admin.connect() as c:
            assert sorted(
                c.execute(text("SELECT domain_name FROM domains WHERE tenant_name = 't09'"))
                .scalars()
                .all()
            ) == ["extra.example.org", host_of("t01")]
    finally:
        e.engine.dispose()


# -- connections and process ------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_pooled_connection_does_not_keep_the_last_tenants_search_path(
    fresh_db: str, admin: Engine, driver: str
) -> None:
    e = _env(with_driver(fresh_db, driver), admin, pool_size=1, max_overflow=0)
    try:
        default = None
        with e.engine.connect() as c:
            default = c.execute(text("SHOW search_path")).scalar()
        for host in ("t00.example.com", host_of("t01")):
            assert e.get(host).status_code == 200
            raw = e.engine.raw_connection()  # the very connection the request used
            try:
                cur = raw.cursor()
                cur.execute("SHOW search_path")
                assert cur.fetchone()[0] == default
                cur.close()
            finally:
                raw.close()
            r = e.get("www.example.com", "/")
            assert set(r.get_json()["tags"]) == {"public"}, r.data
    finally:
        e.engine.dispose()


def test_import_does_not_switch_on_debug_logging() -> None:
    code = (
        "import logging\n"
        "import flask_tenants, flask_tenants.aio, flask_tenants.cli\n"
        "names = ['', 'sqlalchemy', 'sqlalchemy.engine', 'flask_tenants', 'werkzeug']\n"
        "print(*[logging.getLogger(n).level for n in names], len(logging.root.handlers))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    root, sqlalchemy, engine, ours, werkzeug, handlers = map(int, out)
    assert root == 30 and handlers == 0, out  # the process-wide default is untouched
    assert sqlalchemy in (0, 30), out  # SQLAlchemy itself sets WARNING on its root logger
    assert engine == ours == werkzeug == 0, out  # nothing switched to DEBUG or INFO
