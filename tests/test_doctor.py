"""flask tenants doctor: each check finds what it is about on a real server, and the command
exits non-zero on problems."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from flask_tenants.doctor import (
    Finding,
    _asyncpg_caches,
    check_consistency_of,
    check_migrations,
    check_pool,
    check_pooler,
    check_privileges,
    check_search_path,
    run_checks,
)
from tests.sample_app import make_app
from tests.security.conftest import pgbouncer  # noqa: F401 - the fixture


def _levels(findings: list[Finding]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.level, []).append(f.message)
    return out


def _state(app: Flask) -> Any:
    return app.extensions["flask_tenants"]


@pytest.fixture
def app(fresh_db: str) -> Flask:
    app = make_app(fresh_db)
    for name in ("acme", "globex"):
        app.extensions["test_tenancy"].create_tenant(name)
    return app


def test_command_reports_and_exits_non_zero_on_problems(app: Flask) -> None:
    # the test server connects as a superuser: a problem the doctor must report
    result = app.test_cli_runner().invoke(args=["tenants", "doctor"])
    assert result.exit_code == 1, result.output
    assert "[PROBLEM] privileges: the application connects as superuser" in result.output
    assert "CREATE ROLE app LOGIN" in result.output
    assert "[OK     ] schemas: every tenant has its schema" in result.output
    ok = app.test_cli_runner().invoke(args=["tenants", "doctor", "--check", "schemas"])
    assert ok.exit_code == 0, ok.output
    assert "0 problem(s)" in ok.output


def test_pool_settings(fresh_db: str) -> None:
    bare = make_app(fresh_db)
    found = _levels(check_pool(_state(bare)))
    assert any("pool_recycle is off" in m for m in found["warning"])
    assert any("pool_pre_ping is off" in m for m in found["warning"])
    tuned = make_app(
        fresh_db,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_recycle": 600, "pool_pre_ping": True, "pool_size": 5},
    )
    assert [f.level for f in check_pool(_state(tuned))] == ["ok"]
    greedy = make_app(
        fresh_db,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 200, "max_overflow": 100, "pool_recycle": 60},
    )
    assert any("server allows" in m for m in _levels(check_pool(_state(greedy)))["warning"])


def test_schema_consistency(app: Flask) -> None:
    engine = _state(app).engine
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA globex CASCADE"))
        conn.execute(text("CREATE SCHEMA leftover"))
        conn.execute(text("CREATE TABLE leftover.tanks (id int)"))
        conn.execute(text("CREATE TABLE public.tanks (id int)"))
    found = _levels(check_consistency_of(_state(app)))
    assert any("tenants without schema: globex" in m for m in found["problem"])
    assert any("public.tanks" in m for m in found["problem"])
    assert any("leftover" in m for m in found["warning"])


def test_migrations_check_is_skipped_without_a_directory(app: Flask) -> None:
    [finding] = check_migrations(_state(app))
    assert finding.level == "skipped"


def test_search_path_on_the_database(app: Flask, fresh_db: str) -> None:
    assert check_search_path(_state(app))[0].level == "ok"
    database = make_url(fresh_db).database
    with _state(app).engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" SET search_path = acme, public'))
        conn.commit()
    _state(app).engine.dispose()  # new connections pick the setting up
    [finding] = check_search_path(_state(app))
    assert finding.level == "warning"
    assert "search_path=acme, public" in finding.message and "RESET search_path" in finding.fix


@pytest.fixture
def limited_role(fresh_db: str) -> Iterator[str]:
    """A login role with only what the application needs; dropped afterwards."""
    role = "app_" + uuid.uuid4().hex[:8]
    admin = create_engine(fresh_db, isolation_level="AUTOCOMMIT")
    database = make_url(fresh_db).database
    with admin.connect() as c:
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        c.execute(text(f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO "{role}"'))
    yield role
    with admin.connect() as c:
        c.execute(text(f'DROP OWNED BY "{role}"'))
        c.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def test_privileges_of_a_limited_role(app: Flask, fresh_db: str, limited_role: str) -> None:
    assert check_privileges(_state(app))[0].level == "problem"  # superuser
    with _state(app).engine.begin() as c:
        c.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{limited_role}"'))
    url = make_url(fresh_db).set(username=limited_role).render_as_string(False)
    limited = make_app(url)
    assert [f.level for f in check_privileges(_state(limited))] == ["ok"]
    assert [f.level for f in check_consistency_of(_state(limited))] == ["ok"]
    with _state(app).engine.begin() as c:
        c.execute(text(f'ALTER ROLE "{limited_role}" CREATEDB CREATEROLE'))
    [finding] = check_privileges(_state(limited))
    assert finding.level == "warning" and "CREATEROLE, CREATEDB" in finding.message
    assert "NOCREATEROLE NOCREATEDB" in finding.fix
    _state(limited).engine.dispose()


def test_session_level_settings_are_a_problem_behind_a_pooler(fresh_db: str) -> None:
    app = make_app(fresh_db)
    assert [f.level for f in check_pooler(_state(app))] == ["ok"]  # direct: nothing between

    @event.listens_for(_state(app).engine, "connect")
    def session_set(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET work_mem = '8MB'")  # session level, outlives the transaction
        dbapi_conn.commit()

    _state(app).engine.dispose()
    found = _levels(check_pooler(_state(app), pgbouncer=True))
    assert any("work_mem=8192" in m for m in found["problem"])


def test_through_pgbouncer(pgbouncer: Any, fresh_db: str) -> None:  # noqa: F811
    database = make_url(fresh_db).database
    url = pgbouncer.url_for(database, "psycopg")
    app = make_app(url)
    found = _levels(check_pooler(_state(app)))  # detected: the server's port is not the URL's
    assert any("connection pooler sits between" in m for m in found["ok"])
    assert any("prepare_threshold=5" in m for m in found["problem"])
    fixed = make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"prepare_threshold": None}})
    assert "problem" not in _levels(check_pooler(_state(fixed)))
    for a in (app, fixed):
        _state(a).engine.dispose()


def test_asyncpg_statement_caches_are_read_from_a_real_connection(fresh_db: str) -> None:
    pytest.importorskip("greenlet")
    from sqlalchemy.ext.asyncio import create_async_engine

    from flask_tenants.aio.engine import pgbouncer_connect_args

    url = make_url(fresh_db).set(drivername="postgresql+asyncpg")
    default = create_async_engine(url)
    off = create_async_engine(url, connect_args=pgbouncer_connect_args())
    try:
        stmt, prepared = _asyncpg_caches(default)
        assert stmt > 0 and prepared > 0
        assert _asyncpg_caches(off) == (0, 0)
    finally:
        import asyncio

        asyncio.run(default.dispose())
        asyncio.run(off.dispose())


def test_run_checks_turns_a_failing_check_into_a_problem(app: Flask) -> None:
    state = _state(app)
    with app.app_context():
        findings = run_checks(only=["schemas", "search_path"])
    assert {f.check for f in findings} == {"schemas", "search_path"}
    with state.engine.begin() as conn:
        conn.execute(text("DROP TABLE domains, tenants CASCADE"))
    findings = run_checks(state, only=["schemas"])
    assert findings[0].level == "problem" and "the check failed" in findings[0].message
