"""``flask tenants ...`` through click's CliRunner (``app.test_cli_runner()``), on a real
PostgreSQL: every command, and bad input answered with one ``Error:`` line, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select, text

from flask_tenants import current_tenant, with_db
from tests.test_migrations import (
    ADD_COLOR,
    columns,
    engine_of,
    make_fleet_app,
    versions,
    write_revision,
)


def add_commands(app: Flask) -> None:
    """App commands that ``tenants exec`` runs in tenant contexts."""
    tank = app.extensions["test_models"].Tank

    @app.cli.command("add-tank")
    @click.argument("name")
    def add_tank(name: str) -> None:
        with with_db() as session:
            session.add(tank(name=name))
            session.commit()

    @app.cli.command("tank-names")
    def tank_names() -> None:
        with with_db() as session:
            names = session.execute(select(tank.name).order_by(tank.name)).scalars().all()
        click.echo(f"{current_tenant()}: {','.join(names) or '-'}")

    @app.cli.command("fail-in")
    @click.argument("tenant")
    def fail_in(tenant: str) -> None:
        if current_tenant() == tenant:
            raise RuntimeError(f"boom in {tenant}")
        click.echo(f"fine in {current_tenant()}")


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    return tmp_path / "migrations" / "tenants"


@pytest.fixture
def app(fresh_db: str, mdir: Path) -> Iterator[Flask]:
    a = make_fleet_app(fresh_db.replace("postgresql://", "postgresql+psycopg://"), mdir)
    add_commands(a)
    yield a
    engine_of(a).dispose()


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["tenants", *args], input=input)


def ok(app: Flask, *args: str, input: str | None = None) -> str:
    r = run(app, *args, input=input)
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r.output


def error(app: Flask, *args: str, code: int = 1, input: str | None = None) -> str:
    """Run a command that must fail: exit ``code``, one ``Error:`` line, no traceback."""
    r = run(app, *args, input=input)
    assert r.exit_code == code, (args, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), (args, r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("Error")]
    assert len(lines) == 1, r.output
    return lines[0]


def tenant_names(app: Flask) -> list[str]:
    return [t["name"] for t in json.loads(ok(app, "list", "--json"))]


def schemas(app: Flask) -> set[str]:
    with engine_of(app).connect() as conn:
        return set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())


# -- create / list ------------------------------------------------------------------------------


def test_create_and_list(app: Flask) -> None:
    out = ok(app, "create", "acme", "--domain", "acme.example.com", "-d", "acme.test")
    assert "Created tenant 'acme' with domain(s) acme.example.com, acme.test" in out
    ok(app, "create", "globex", "--set", "deactivated=true")
    assert {"acme", "globex"} <= schemas(app)
    table = ok(app, "list")
    header, rule, *rows, total = table.strip().splitlines()
    assert header.split() == ["NAME", "DOMAINS", "PRIMARY", "STATUS", "REVISION"]
    assert rows[0].split() == [
        "acme",
        "acme.example.com,",
        "acme.test",
        "acme.example.com",
        "active",
        "r1",
        "(head)",
    ]
    assert rows[1].split() == ["globex", "-", "-", "deactivated", "r1", "(head)"]
    assert total == "2 tenant(s)."
    data = json.loads(ok(app, "list", "--json"))
    assert data[0] == {
        "name": "acme",
        "domains": ["acme.example.com", "acme.test"],
        "primary_domain": "acme.example.com",
        "deactivated": False,
        "revisions": ["r1"],
        "at_head": True,
        "revision_display": "r1 (head)",
        "node": None,  # the Citus worker holding the tenant (no Citus here)
    }


def test_list_without_tenants_and_behind_head(app: Flask, mdir: Path) -> None:
    assert ok(app, "list").strip() == "No tenants."
    ok(app, "create", "acme")
    write_revision(mdir, "r2", "r1", ADD_COLOR)
    assert "r1 (behind)" in ok(app, "list")


def test_create_bad_input(app: Flask) -> None:
    ok(app, "create", "acme", "--domain", "acme.example.com")
    assert "already exists" in error(app, "create", "acme")
    assert "Invalid tenant name 'Acme'" in error(app, "create", "Acme")
    assert "reserved" in error(app, "create", "public")
    assert "already belongs to a tenant" in error(app, "create", "other", "-d", "acme.example.com")
    assert "Invalid domain name" in error(app, "create", "other", "-d", "bad host:80")
    assert "same domain is given twice" in error(app, "create", "other", "-d", "a.t", "-d", "a.t")
    assert "no settable column 'color'" in error(app, "create", "other", "-s", "color=red", code=2)
    assert "is not KEY=VALUE" in error(app, "create", "other", "-s", "oops", code=2)
    assert "not a valid value" in error(app, "create", "other", "-s", "deactivated=maybe", code=2)
    assert tenant_names(app) == ["acme"] and "other" not in schemas(app)


# -- rename / activate / deactivate / delete ---------------------------------------------------


def test_rename(app: Flask) -> None:
    ok(app, "create", "acme", "-d", "acme.example.com")
    ok(app, "create", "globex")
    assert "Renamed tenant 'acme' to 'initech'" in ok(app, "rename", "acme", "initech")
    assert "initech" in schemas(app) and "acme" not in schemas(app)
    assert json.loads(ok(app, "list", "--json"))[1]["domains"] == ["acme.example.com"]
    assert "no tenant named 'nobody'" in error(app, "rename", "nobody", "x")
    assert "already exists" in error(app, "rename", "initech", "globex")
    assert "Invalid tenant name" in error(app, "rename", "initech", "9lives")
    assert tenant_names(app) == ["globex", "initech"]


def test_activate_and_deactivate(app: Flask) -> None:
    ok(app, "create", "acme")
    assert "Deactivated tenant 'acme'" in ok(app, "deactivate", "acme")
    assert json.loads(ok(app, "list", "--json"))[0]["deactivated"] is True
    assert "Activated tenant 'acme'" in ok(app, "activate", "acme")
    assert json.loads(ok(app, "list", "--json"))[0]["deactivated"] is False
    assert "no tenant named 'nobody'" in error(app, "deactivate", "nobody")
    assert "no tenant named 'nobody'" in error(app, "activate", "nobody")


def test_activate_without_deactivated_column_says_what_to_add(fresh_db: str, mdir: Path) -> None:
    app = make_fleet_app(fresh_db, mdir, deactivated=False)
    try:
        ok(app, "create", "acme")
        for cmd in ("activate", "deactivate"):
            line = error(app, cmd, "acme")
            assert "has no 'deactivated' column" in line and "deactivated = db.Column" in line
        assert json.loads(ok(app, "list", "--json"))[0]["deactivated"] is False
    finally:
        engine_of(app).dispose()


def test_delete(app: Flask) -> None:
    ok(app, "create", "acme", "-d", "acme.example.com")
    r = run(app, "delete", "acme", input="n\n")
    assert r.exit_code == 1 and "Aborted" in r.output and "Traceback" not in r.output
    assert "acme" in schemas(app) and tenant_names(app) == ["acme"]
    assert "Deleted tenant 'acme'" in ok(app, "delete", "acme", input="y\n")
    assert "acme" not in schemas(app) and tenant_names(app) == []
    ok(app, "create", "acme", "-d", "acme.example.com")  # its domain was freed
    out = ok(app, "delete", "acme", "--yes")
    assert "Delete tenant" not in out and "Deleted tenant 'acme'" in out
    r = run(app, "delete", "nobody")  # unknown: an error, and no question asked
    assert r.exit_code == 1 and "no tenant named 'nobody'" in r.output and "[y/N]" not in r.output


# -- domains -------------------------------------------------------------------------------------


def test_domains(app: Flask) -> None:
    ok(app, "create", "acme", "-d", "acme.example.com")
    ok(app, "create", "globex", "-d", "globex.example.com")
    assert "Added domain 'app.acme.io'" in ok(app, "domains", "add", "acme", "APP.Acme.IO")
    ok(app, "domains", "add", "acme", "shop.acme.io", "--primary")
    row = json.loads(ok(app, "list", "--json"))[0]
    assert row["primary_domain"] == "shop.acme.io" and len(row["domains"]) == 3
    out = ok(app, "domains", "set-primary", "acme.example.com")
    assert "'acme.example.com' is now the primary domain of tenant 'acme'" in out
    assert json.loads(ok(app, "list", "--json"))[0]["primary_domain"] == "acme.example.com"
    assert "Removed domain 'app.acme.io'" in ok(app, "domains", "remove", "app.acme.io")
    assert "already belongs" in error(app, "domains", "add", "acme", "globex.example.com")
    assert "no tenant named 'nobody'" in error(app, "domains", "add", "nobody", "x.example.com")
    assert "Invalid domain name" in error(app, "domains", "add", "acme", "1.2.3.4")
    assert "No tenant has the domain" in error(app, "domains", "remove", "app.acme.io")
    assert "No tenant has the domain" in error(app, "domains", "set-primary", "nope.example.com")
    data = json.loads(ok(app, "list", "--json"))
    assert data[0]["domains"] == ["acme.example.com", "shop.acme.io"]
    assert data[1]["domains"] == ["globex.example.com"]


# -- migrate / stamp / revision / init-migrations -------------------------------------------------


def test_migrate(app: Flask, mdir: Path) -> None:
    for n in ("t1", "t2", "t3"):
        ok(app, "create", n)
    out = ok(app, "migrate")
    assert "0 tenant(s) to migrate, 3 already at head (r1)" in out
    assert "Migrated 0, skipped 3 (at head), failed 0" in out
    write_revision(
        mdir,
        "r2",
        "r1",
        ADD_COLOR + "\nif op.get_bind().execute(sa.text('SELECT current_schema()')).scalar()"
        " == 't2':\n    op.execute('SELECT 1/0')",
    )
    out = ok(app, "migrate", "--tenant", "t1")
    assert "Migrated 1, skipped 0" in out and versions(app)["t1"] == ("r2",)
    r = run(app, "migrate", "--jobs", "2")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "Migrated 1, skipped 1 (at head), failed 1" in r.output
    assert "t2: DivisionByZero: division by zero (stays at r1)" in r.output
    assert "run 'flask tenants migrate' again" in r.output
    assert versions(app) == {"t1": ("r2",), "t2": ("r1",), "t3": ("r2",)}
    assert "Unknown tenant(s): nobody" in error(app, "migrate", "-t", "t1", "-t", "nobody")
    assert "Invalid tenant name" in error(app, "migrate", "-t", "Bad")
    assert "--jobs" in error(app, "migrate", "--jobs", "0", code=2)
    write_revision(mdir, "r2", "r1", ADD_COLOR)  # fixed
    out = ok(app, "migrate")
    assert "Migrated 1, skipped 2 (at head), failed 0" in out and "color" in columns(app, "t2")


def test_migrate_without_tenant_migrations(fresh_db: str, tmp_path: Path) -> None:
    bare = make_fleet_app(fresh_db, None)
    empty = make_fleet_app(fresh_db, tmp_path / "not-yet", revision=False)
    (tmp_path / "not-yet" / "env.py").unlink()
    try:
        assert "TENANTS_MIGRATIONS_DIR" in error(bare, "migrate")
        assert "flask tenants init-migrations" in error(empty, "migrate")
        assert "pass --directory" in error(bare, "init-migrations", code=2)
        assert ok(bare, "list").strip() == "No tenants."
    finally:
        engine_of(bare).dispose()
        engine_of(empty).dispose()


def test_stamp(app: Flask, mdir: Path) -> None:
    ok(app, "create", "t1")
    ok(app, "create", "t2")
    assert "--tenant NAME (repeatable) or --all" in error(app, "stamp", "head", code=2)
    assert "--tenant NAME (repeatable) or --all" in error(
        app, "stamp", "head", "--all", "-t", "t1", code=2
    )
    write_revision(mdir, "r2", "r1", ADD_COLOR)
    out = ok(app, "stamp", "head", "--tenant", "t1")
    assert "Stamped 1 tenant(s) at head, 0 already there, 0 failed." in out
    assert versions(app) == {"t1": ("r2",), "t2": ("r1",)} and "color" not in columns(app, "t1")
    assert "Stamped 1 tenant(s) at head, 1 already there" in ok(app, "stamp", "head", "--all")
    r = run(app, "stamp", "nosuchrev", "--all")
    assert r.exit_code == 1 and "nosuchrev" in r.output and "Traceback" not in r.output
    assert "Unknown tenant(s): nobody" in error(app, "stamp", "head", "-t", "nobody")


def test_downgrade(app: Flask, mdir: Path) -> None:
    for n in ("t1", "t2"):
        ok(app, "create", n)
    write_revision(mdir, "r2", "r1", ADD_COLOR, downgrade='op.drop_column("tanks", "color")')
    ok(app, "migrate")
    assert "--tenant NAME (repeatable) or --all" in error(app, "downgrade", "-1", code=2)
    assert "Downgraded 1, skipped 0, failed 0." in ok(app, "downgrade", "-1", "-t", "t1")
    assert versions(app) == {"t1": ("r1",), "t2": ("r2",)} and "color" not in columns(app, "t1")
    assert "Downgraded 1, skipped 1, failed 0." in ok(app, "downgrade", "r1", "--all")
    assert "color" not in columns(app, "t2")
    assert "Migrated 2" in ok(app, "migrate")
    assert "Unknown tenant(s): nobody" in error(app, "downgrade", "r1", "-t", "nobody")


def test_revision_and_init_migrations(app: Flask, mdir: Path) -> None:
    assert "No changes in the tenant tables" in ok(app, "revision", "-m", "nothing")
    out = ok(app, "revision", "--empty", "-m", "data fix", "--rev-id", "r2manual")
    assert "Wrote tenant revision" in out and (mdir / "versions" / "r2manual_data_fix.py").exists()
    assert "TENANT MIGRATION" in (mdir / "versions" / "r2manual_data_fix.py").read_text()
    assert "already holds a migration environment" in error(app, "init-migrations")
    other = mdir.parent / "elsewhere"
    out = ok(app, "init-migrations", "--directory", str(other))
    assert (other / "env.py").exists() and "Wrote" in out


# -- exec ----------------------------------------------------------------------------------------


def test_exec_runs_a_command_in_each_tenant(app: Flask) -> None:
    for n in ("acme", "globex"):
        ok(app, "create", n)
    assert ok(app, "exec", "--tenant", "acme", "--", "add-tank", "a1") == ""
    ok(app, "exec", "-t", "globex", "add-tank", "g1")  # the -- is optional
    out = ok(app, "exec", "--all", "--", "tank-names")
    assert out.splitlines()[:4] == ["== acme ==", "acme: a1", "== globex ==", "globex: g1"]
    assert "Ran 'tank-names' in 2 tenant(s), failed in 0" in out
    with engine_of(app).connect() as conn:  # nothing landed in public
        assert conn.execute(text("SELECT to_regclass('public.tanks')")).scalar() is None


def test_exec_failures_and_bad_input(app: Flask) -> None:
    for n in ("acme", "globex", "initech"):
        ok(app, "create", n)
    r = run(app, "exec", "--all", "--", "fail-in", "globex")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "fine in acme" in r.output and "fine in initech" in r.output
    assert "Error in tenant 'globex': RuntimeError: boom in globex" in r.output
    assert "failed in 1" in r.output
    r = run(app, "exec", "--all", "--stop-on-error", "--", "fail-in", "acme")
    assert r.exit_code == 1 and "fine in globex" not in r.output
    assert "Ran 'fail-in acme' in 0 tenant(s), failed in 1" in r.output
    assert "--tenant NAME (repeatable) or --all" in error(app, "exec", "tank-names", code=2)
    assert "no tenant named 'nobody'" in error(app, "exec", "-t", "nobody", "tank-names")
    r = run(app, "exec", "-t", "acme", "no-such-command")
    assert r.exit_code == 1 and "No such command" in r.output and "Traceback" not in r.output
    assert "Missing argument" in run(app, "exec", "--all").output


# -- check ---------------------------------------------------------------------------------------


def test_check(app: Flask, mdir: Path) -> None:
    ok(app, "create", "acme")
    ok(app, "create", "globex")
    assert "OK: 2 tenant(s)" in ok(app, "check")
    write_revision(mdir, "r2", "r1", ADD_COLOR)
    with engine_of(app).begin() as conn:
        conn.execute(text("DROP SCHEMA globex CASCADE"))
        conn.execute(text("CREATE SCHEMA stray"))
        conn.execute(text("CREATE TABLE stray.tanks (id int)"))
    r = run(app, "check")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "tenant 'globex' has no schema" in r.output
    assert "schema 'stray' holds tenant tables but belongs to no tenant" in r.output
    assert "1 tenant(s) not at the migration head: acme" in r.output
    # r2 adds a column the models lack: the migrations and the models disagree
    assert "differ from what the tenant migrations build: remove_column" in r.output
    r = run(app, "check", "--no-drift")
    assert r.exit_code == 1 and "has no schema" in r.output and "differ from" not in r.output


# -- the same group on Quart ---------------------------------------------------------------------


def test_quart_tenants(fresh_db: str, mdir: Path) -> None:
    from quart import Quart

    from flask_tenants.aio import QuartTenants
    from flask_tenants.migrations import init_tenant_migrations
    from tests.test_migrations import R1, build_models

    m = build_models()
    app = Quart(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = fresh_db  # served by asyncpg
    app.config["TENANTS_MIGRATIONS_DIR"] = str(mdir)
    init_tenant_migrations(mdir)
    (mdir / "versions" / "r1.py").write_text(R1)
    QuartTenants(tenant_model=m.Tenant, domain_model=m.Domain, db=m.Base).init_app(app)
    from sqlalchemy import create_engine

    sync = create_engine(fresh_db.replace("postgresql://", "postgresql+psycopg://"))
    shared = [t for t in m.Base.metadata.sorted_tables if t.name in ("tenants", "domains")]
    m.Base.metadata.create_all(sync, tables=shared)
    runner = app.test_cli_runner()

    def invoke(*args: str) -> Result:
        return runner.invoke(args=["tenants", *args])

    try:
        r = invoke("create", "acme", "-d", "acme.example.com")
        assert r.exit_code == 0 and "Created tenant 'acme'" in r.output, r.output
        r = invoke("create", "Acme")
        assert r.exit_code == 1 and r.output.startswith("Error: Invalid tenant name 'Acme'")
        assert "acme.example.com  active  r1 (head)" in invoke("list").output
        write_revision(mdir, "r2", "r1", ADD_COLOR)
        r = invoke("migrate", "--jobs", "2")
        assert r.exit_code == 0 and "Migrated 1, skipped 0" in r.output, r.output
        assert invoke("rename", "acme", "globex").exit_code == 0
        assert "Deleted tenant 'globex'" in invoke("delete", "globex", "--yes").output
        with sync.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tenants")).scalar() == 0
    finally:
        sync.dispose()
