"""Per-tenant migrations on a real PostgreSQL: the fleet runner, stamping, autogenerate, and the
Flask-Migrate (public) side staying as it was.

``make_fleet_app`` (also used by tests/test_cli.py and tests/test_provisioning.py) builds an app
on fresh declarative models with a tenant migration directory holding one revision, ``r1``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Boolean, Column, Integer, String, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from flask_tenants import FlaskTenants, lifecycle
from flask_tenants.migrations import (
    MigrationError,
    init_tenant_migrations,
    make_revision,
    migrate_tenants,
    model_drift,
    read_revisions,
    stamp_tenants,
)
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin
from flask_tenants.state import TenancyState
from tests.conftest import full_size

R1 = '''"""create tanks

TENANT MIGRATION
"""
from alembic import op
import sqlalchemy as sa

revision = "r1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tanks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_tanks_name"), "tanks", ["name"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_tanks_name"), table_name="tanks")
    op.drop_table("tanks")
'''

REVISION = '''"""{doc}"""
import os

from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
{down_body}
'''


def write_revision(
    mdir: Path, rev: str, down: str, body: str, doc: str = "", downgrade: str = "pass"
) -> None:
    """A tenant revision file ``rev`` after ``down`` whose upgrade() is ``body``."""
    (mdir / "versions" / f"{rev}.py").write_text(
        REVISION.format(
            rev=rev,
            down=down,
            doc=doc or rev,
            body=textwrap.indent(body, "    "),
            down_body=textwrap.indent(downgrade, "    "),
        )
    )


def build_models(deactivated: bool = True, color: bool = False) -> Any:
    with_deactivated, with_color = deactivated, color
    """Fresh model classes (their own metadata): Tenant, Domain, Tank."""

    class Base(DeclarativeBase):
        pass

    class Tenant(TenantMixin, Base):
        __tablename__ = "tenants"
        if with_deactivated:
            deactivated = Column(Boolean, nullable=False, default=False)

    class Domain(DomainMixin, Base):
        __tablename__ = "domains"

    class Tank(TenantModelMixin, Base):
        __tablename__ = "tanks"
        id = Column(Integer, primary_key=True)
        name = Column(String(128), index=True)
        if with_color:
            color = Column(String(20))

    class Models:
        pass

    m = Models()
    m.Base, m.Tenant, m.Domain, m.Tank = Base, Tenant, Domain, Tank  # type: ignore[attr-defined]
    return m


def make_fleet_app(
    url: str,
    mdir: Path | None,
    *,
    revision: bool = True,
    config: dict[str, Any] | None = None,
    **model_kw: Any,
) -> Flask:
    """An app with the tenant migration directory ``mdir`` (created, holding r1 unless
    ``revision`` is False) and the shared tables created."""
    m = build_models(**model_kw)
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = url
    app.config["TENANTS_ENGINE_OPTIONS"] = {"pool_size": 3}
    app.config.update(config or {})
    if mdir is not None:
        app.config["TENANTS_MIGRATIONS_DIR"] = str(mdir)
        if not (mdir / "env.py").exists():
            init_tenant_migrations(mdir)
            if revision:
                (mdir / "versions" / "r1.py").write_text(R1)
    ext = FlaskTenants(app, tenant_model=m.Tenant, domain_model=m.Domain).init()
    state = ext.state_for(app)
    shared = [t for t in m.Base.metadata.sorted_tables if t not in state.tenant_tables]
    m.Base.metadata.create_all(state.engine, tables=shared)
    app.extensions["test_models"] = m
    return app


def state_of(app: Flask) -> TenancyState:
    return app.extensions["flask_tenants"]  # type: ignore[no-any-return]


def engine_of(app: Flask) -> Engine:
    return state_of(app).engine  # type: ignore[no-any-return]


def create(app: Flask, *names: str) -> None:
    st = state_of(app)
    for name in names:
        session = st.session_maker()
        try:
            lifecycle.create_tenant(session, st, name)
            session.commit()
        finally:
            session.close()


def versions(app: Flask) -> dict[str, tuple[str, ...]]:
    with engine_of(app).connect() as conn:
        return {n: r.revisions for n, r in read_revisions(conn, state_of(app)).items()}


def columns(app: Flask, schema: str, table: str = "tanks") -> set[str]:
    with engine_of(app).connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = :s AND table_name = :t"
                ),
                {"s": schema, "t": table},
            ).scalars()
        )


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    return tmp_path / "migrations" / "tenants"


@pytest.fixture
def app(db_url: str, mdir: Path) -> Iterator[Flask]:
    a = make_fleet_app(db_url, mdir)
    yield a
    engine_of(a).dispose()


ADD_COLOR = 'op.add_column("tanks", sa.Column("color", sa.String(20), nullable=True))'


# -- new tenants are at head ------------------------------------------------------------------


def test_new_tenants_are_created_at_head_and_skipped(app: Flask, mdir: Path) -> None:
    create(app, "t1", "t2")
    assert versions(app) == {"t1": ("r1",), "t2": ("r1",)}
    with engine_of(app).connect() as conn:  # the stamp is in the tenant's schema, not public
        assert conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None
    report = migrate_tenants(state_of(app))
    assert [r.status for r in report.results] == ["skipped", "skipped"] and report.ok
    write_revision(mdir, "r2", "r1", ADD_COLOR)
    create(app, "t3")  # created after r2 appeared: at the new head, from the models
    assert versions(app)["t3"] == ("r2",)
    report = migrate_tenants(state_of(app))
    assert {r.name: r.status for r in report.results} == {
        "t1": "done",
        "t2": "done",
        "t3": "skipped",
    }
    assert "color" in columns(app, "t1") and "color" in columns(app, "t2")


def test_no_revisions_no_stamp(db_url: str, mdir: Path) -> None:
    app = make_fleet_app(db_url, mdir, revision=False)
    try:
        create(app, "t1")
        with engine_of(app).connect() as conn:
            assert conn.execute(text("SELECT to_regclass('t1.alembic_version')")).scalar() is None
        assert migrate_tenants(state_of(app)).skipped[0].name == "t1"
    finally:
        engine_of(app).dispose()


# -- the fleet run ----------------------------------------------------------------------------


def test_one_failing_tenant_is_rolled_back_alone_and_a_rerun_finishes(
    app: Flask, mdir: Path
) -> None:
    names = [f"t{i}" for i in range(1, 6)]
    create(app, *names)
    for n in names:
        with engine_of(app).begin() as conn:
            conn.execute(text(f"INSERT INTO \"{n}\".tanks (name) VALUES ('a'), ('b')"))  # noqa: S608
    with engine_of(app).begin() as conn:  # t3 holds data the new constraint refuses
        conn.execute(text("UPDATE t3.tanks SET name = 'a'"))
    write_revision(
        mdir,
        "r2",
        "r1",
        ADD_COLOR + '\nop.create_unique_constraint("uq_tanks_name", "tanks", ["name"])',
    )
    report = migrate_tenants(state_of(app))
    assert not report.ok
    assert [r.name for r in report.failed] == ["t3"]
    failed = report.failed[0]
    assert "UniqueViolation" in (failed.error or "") and failed.after == ("r1",)
    assert sorted(r.name for r in report.done) == ["t1", "t2", "t4", "t5"]
    assert versions(app) == {
        "t1": ("r2",),
        "t2": ("r2",),
        "t3": ("r1",),
        "t4": ("r2",),
        "t5": ("r2",),
    }
    assert "color" not in columns(app, "t3")  # the whole revision rolled back, not half of it
    with engine_of(app).begin() as conn:
        conn.execute(text("UPDATE t3.tanks SET name = 'c' WHERE id = 2"))
    report = migrate_tenants(state_of(app))
    assert report.ok and [r.name for r in report.done] == ["t3"] and len(report.skipped) == 4
    assert "color" in columns(app, "t3")


def test_interrupted_run_is_resumed(app: Flask, mdir: Path, monkeypatch: Any) -> None:
    names = [f"t{i}" for i in range(1, 6)]
    create(app, *names)
    write_revision(
        mdir,
        "r2",
        "r1",
        "schema = op.get_bind().execute(sa.text('SELECT current_schema()')).scalar()\n"
        "if schema == os.environ.get('FT_INTERRUPT_AT'):\n"
        "    raise KeyboardInterrupt\n" + ADD_COLOR,
    )
    monkeypatch.setenv("FT_INTERRUPT_AT", "t3")
    report = migrate_tenants(state_of(app))
    assert report.interrupted and not report.ok
    assert [r.name for r in report.done] == ["t1", "t2"]
    assert versions(app) == {
        "t1": ("r2",),
        "t2": ("r2",),
        "t3": ("r1",),
        "t4": ("r1",),
        "t5": ("r1",),
    }
    assert "color" not in columns(app, "t3")
    monkeypatch.delenv("FT_INTERRUPT_AT")
    report = migrate_tenants(state_of(app))
    assert report.ok and [r.name for r in report.done] == ["t3", "t4", "t5"]
    assert [r.name for r in report.skipped] == ["t1", "t2"]


def test_jobs_spread_the_work_over_processes(fresh_db: str, mdir: Path) -> None:
    app = make_fleet_app(fresh_db, mdir)
    try:
        names = [f"t{i:02d}" for i in range(12)]
        create(app, *names)
        write_revision(
            mdir,
            "r2",
            "r1",
            ADD_COLOR + '\nop.execute("CREATE TABLE worker_pid AS SELECT pg_backend_pid() AS p")',
        )
        report = migrate_tenants(state_of(app), jobs=3)
        assert report.ok and len(report.done) == 12
        assert (report.jobs, report.mode) == (3, "process")
        with engine_of(app).connect() as conn:
            query = 'SELECT p FROM "{}".worker_pid'
            pids = {conn.execute(text(query.format(n))).scalar() for n in names}
        assert len(pids) > 1  # more than one connection did the work
        assert set(versions(app).values()) == {("r2",)}
    finally:
        engine_of(app).dispose()


def test_a_worker_recycles_its_server_connection(app: Flask, mdir: Path, monkeypatch: Any) -> None:
    from flask_tenants import migrations

    monkeypatch.setattr(migrations._Worker, "RECYCLE_AFTER", 2)
    names = ["t1", "t2", "t3", "t4", "t5"]
    create(app, *names)
    write_revision(mdir, "r2", "r1", 'op.execute("CREATE TABLE pid AS SELECT pg_backend_pid() p")')
    assert migrate_tenants(state_of(app)).ok
    with engine_of(app).connect() as conn:
        pids = [conn.execute(text(f"SELECT p FROM {n}.pid")).scalar() for n in names]  # noqa: S608
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_failure_in_a_forked_worker_is_reported(fresh_db: str, mdir: Path) -> None:
    app = make_fleet_app(fresh_db, mdir)
    try:
        create(app, "t1", "t2", "t3", "t4")
        write_revision(
            mdir,
            "r2",
            "r1",
            "if op.get_bind().execute(sa.text('SELECT current_schema()')).scalar() == 't2':\n"
            "    raise SystemExit(3)\n"
            "if op.get_bind().execute(sa.text('SELECT current_schema()')).scalar() == 't4':\n"
            "    op.execute('SELECT 1/0')\n" + ADD_COLOR,
        )
        report = migrate_tenants(state_of(app), jobs=2)
        assert sorted(r.name for r in report.failed) == ["t2", "t4"]
        errors = {r.name: r.error or "" for r in report.failed}
        assert "SystemExit" in errors["t2"] and "DivisionByZero" in errors["t4"]
        assert versions(app) == {"t1": ("r2",), "t2": ("r1",), "t3": ("r2",), "t4": ("r1",)}
    finally:
        engine_of(app).dispose()


def test_revisions_are_read_in_one_query(app: Flask, mdir: Path) -> None:
    names = [f"t{i:02d}" for i in range(15)]
    create(app, *names)
    statements: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine_of(app), "before_cursor_execute", listen)
    try:
        report = migrate_tenants(state_of(app))
    finally:
        event.remove(engine_of(app), "before_cursor_execute", listen)
    assert len(report.skipped) == 15 and not report.done
    version_reads = [s for s in statements if "alembic_version" in s]
    assert len(version_reads) == 1 and version_reads[0].count("UNION ALL") == 14
    assert len(statements) <= 3, statements  # the tenant list (catalog) + the UNION ALL


def test_unknown_tenant_names_and_missing_directory(db_url: str, tmp_path: Path) -> None:
    app = make_fleet_app(db_url, tmp_path / "m" / "tenants")
    bare = make_fleet_app(db_url, None)
    try:
        create(app, "t1")
        with pytest.raises(MigrationError, match="Unknown tenant.*nobody"):
            migrate_tenants(state_of(app), ["t1", "nobody"])
        with pytest.raises(MigrationError, match="TENANTS_MIGRATIONS_DIR"):
            migrate_tenants(state_of(bare))
        bare.config["TENANTS_MIGRATIONS_DIR"] = str(tmp_path / "none")
        from flask_tenants.migrations import attach_migrations

        attach_migrations(bare, state_of(bare))
        with pytest.raises(MigrationError, match="init-migrations"):
            migrate_tenants(state_of(bare))
    finally:
        engine_of(app).dispose()
        engine_of(bare).dispose()


def test_tenant_without_version_table_gets_a_hint_then_stamp(app: Flask, mdir: Path) -> None:
    create(app, "t1", "t2")
    with engine_of(app).begin() as conn:  # as if created before tenant migrations existed
        conn.execute(text("DROP TABLE t1.alembic_version"))
    report = migrate_tenants(state_of(app))
    assert [r.name for r in report.failed] == ["t1"]
    assert "stamp head --tenant t1" in (report.failed[0].error or "")
    results = stamp_tenants(state_of(app), "head", ["t1"])
    assert [(r.name, r.status, r.after) for r in results] == [("t1", "done", ("r1",))]
    assert migrate_tenants(state_of(app)).ok
    assert versions(app) == {"t1": ("r1",), "t2": ("r1",)}


def test_migration_runs_only_in_its_tenant_schema(app: Flask, mdir: Path) -> None:
    """Unqualified names in a revision resolve to the tenant's schema; public is untouched."""
    create(app, "t1", "t2")
    write_revision(
        mdir,
        "r2",
        "r1",
        'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))\n'
        'op.execute("INSERT INTO notes (id) SELECT count(*) FROM tanks")',
    )
    assert migrate_tenants(state_of(app)).ok
    with engine_of(app).connect() as conn:
        found = conn.execute(
            text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'notes'")
        ).scalars()
        assert sorted(found) == ["t1", "t2"]


def test_strict_mode_does_not_stop_fleet_work(fresh_db: str, mdir: Path) -> None:
    """TENANTS_STRICT refuses cross-schema statements outside allow_cross_tenant(): the runner,
    the scratch schema of autogenerate and the drift check are admin work that means it."""
    app = make_fleet_app(fresh_db, mdir, config={"TENANTS_STRICT": True}, color=True)
    try:
        st = state_of(app)
        assert model_drift(st) == ["add_column tanks color"]
        color_rev = make_revision(st, "color", rev_id="r2")
        assert color_rev is not None
        create(app, "t1", "t2")
        write_revision(mdir, "r3", "r2", 'op.add_column("tanks", sa.Column("size", sa.Integer))')
        report = migrate_tenants(st)
        assert report.ok and len(report.done) == 2
        assert [r.status for r in stamp_tenants(st, "head")] == ["skipped", "skipped"]
    finally:
        engine_of(app).dispose()


# -- autogenerate and drift -----------------------------------------------------------------------


def test_autogenerate_writes_tenant_only_revisions(db_url: str, mdir: Path) -> None:
    app = make_fleet_app(db_url, mdir, revision=False)
    try:
        st = state_of(app)
        assert model_drift(st) == ["add_table tanks", "add_index ix_tanks_name"]
        path = make_revision(st, "initial", autogenerate=True)
        assert path is not None
        src = Path(path).read_text()
        assert "TENANT MIGRATION" in src and "create_table('tanks'" in src
        assert "'tenants'" not in src and "'domains'" not in src
        assert model_drift(st) == []
        assert make_revision(st, "nothing", autogenerate=True) is None  # no empty files
        assert len(list((mdir / "versions").glob("*.py"))) == 1
        create(app, "t1")
        app2 = make_fleet_app(db_url, mdir, color=True)  # the models gained a column
        try:
            st2 = state_of(app2)
            assert model_drift(st2) == ["add_column tanks color"]
            path2 = make_revision(st2, "tank color", autogenerate=True)
            assert path2 is not None and "add_column('tanks'" in Path(path2).read_text()
            report = migrate_tenants(st2)
            assert [r.name for r in report.done] == ["t1"] and "color" in columns(app2, "t1")
        finally:
            engine_of(app2).dispose()
    finally:
        engine_of(app).dispose()


# -- the public side: Flask-Migrate, unchanged ----------------------------------------------------


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Alembic's env.py runs logging.fileConfig, which disables every existing logger."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    loggers = {
        n: (lg.disabled, lg.level)
        for n, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    try:
        yield
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.disabled, lg.level = loggers.get(name, (False, logging.NOTSET))


def test_flask_migrate_handles_public_tables_and_tenants_the_rest(
    fresh_db: str, tmp_path: Path
) -> None:
    from flask_migrate import Migrate

    from flask_tenants import create_tenancy, db
    from flask_tenants import init_app as tenants_init_app
    from tests.sample_app import Domain, Tank, Tenant

    assert Tank.__table__.info.get("tenant_specific")
    migrations = tmp_path / "migrations"
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = fresh_db
    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    Migrate(app, db, directory=str(migrations))
    create_tenancy(app, db)
    runner = app.test_cli_runner()

    def cli(*args: str) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    with preserved_logging(), warnings.catch_warnings():
        # Flask-Migrate's env.py template tries Flask-SQLAlchemy's deprecated get_engine() first
        warnings.filterwarnings("ignore", message=".*get_engine.*", category=DeprecationWarning)
        cli("db", "init")
        cli("tenants", "init-migrations")
        cli("db", "migrate", "-m", "public initial")
        cli("db", "upgrade")
        cli("tenants", "revision", "-m", "tenant initial")
        (public_rev,) = (migrations / "versions").glob("*.py")
        (tenant_rev,) = (migrations / "tenants" / "versions").glob("*.py")
        public_src, tenant_src = public_rev.read_text(), tenant_rev.read_text()
        assert "PUBLIC MIGRATION" in public_src and "TENANT MIGRATION" not in public_src
        assert "create_table('tenants'" in public_src and "'tanks'" not in public_src
        assert "TENANT MIGRATION" in tenant_src and "create_table('tanks'" in tenant_src
        assert "'tenants'" not in tenant_src and "'domains'" not in tenant_src
        cli("tenants", "create", "acme", "--domain", "acme.example.com")
        out = cli("tenants", "list")
        assert "acme" in out and f"{tenant_rev.name.split('_')[0]} (head)" in out
        cli("db", "migrate", "-m", "nothing")  # with a tenant schema around: still no changes
        assert len(list((migrations / "versions").glob("*.py"))) == 1
        assert "No changes" in cli("tenants", "revision", "-m", "nothing")
        cli("db", "upgrade")
        assert "skipped 1" in cli("tenants", "migrate")
    with app.app_context():
        db.engine.dispose()


def test_the_migrate_hook_stops_listening_once_requests_are_served(fresh_db: str) -> None:
    """Flask-Migrate is wired at the first app context push (Migrate(app) may come after us);
    once the app has served a request the hook disconnects, so request contexts pay nothing."""
    from flask.signals import appcontext_pushed
    from flask_migrate import Migrate

    from flask_tenants import create_tenancy, db
    from flask_tenants import init_app as tenants_init_app
    from tests.sample_app import Domain, Tenant

    def hooked(app: Flask) -> bool:
        return any(
            getattr(r, "__name__", "") == "_configure_migrate"
            for r in appcontext_pushed.receivers_for(app)
        )

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = fresh_db
    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    create_tenancy(app, db)
    Migrate(app, db)  # after flask-tenants: wired at the first push
    app.add_url_rule("/ping", "ping", lambda: "pong")
    assert hooked(app)
    with app.app_context():
        for model in (Tenant, Domain):
            model.__table__.create(db.engine)  # type: ignore[attr-defined]
    assert hooked(app)  # app contexts before the first request: still listening
    client = app.test_client()
    assert client.get("/ping", base_url="http://www.example.com").data == b"pong"
    migrate = app.extensions["migrate"]
    assert getattr(migrate.configure_args["include_object"], "_flask_tenants", False)
    assert client.get("/ping", base_url="http://www.example.com").data == b"pong"
    assert not hooked(app)
    with app.app_context():
        db.engine.dispose()


# -- a real Ctrl-C on the flask command ---------------------------------------------------------

APP_FILE = """
import os, sys
sys.path.insert(0, {root!r})
from tests.test_migrations import make_fleet_app
from pathlib import Path
app = make_fleet_app(os.environ["FT_URL"], Path(os.environ["FT_MDIR"]))
"""


@pytest.mark.parametrize(
    "jobs",
    [
        pytest.param("1", marks=pytest.mark.skipif(not full_size(), reason="TENANTS_FULL=1")),
        "2",
    ],
)
def test_ctrl_c_on_flask_tenants_migrate(fresh_db: str, tmp_path: Path, jobs: str) -> None:
    url = fresh_db.replace("postgresql://", "postgresql+psycopg://")
    mdir = tmp_path / "tenants"
    app = make_fleet_app(url, mdir)
    names = [f"t{i}" for i in range(1, 7)]
    create(app, *names)
    flag = tmp_path / "reached"
    write_revision(
        mdir,
        "r2",
        "r1",
        ADD_COLOR + "\n"
        "if op.get_bind().execute(sa.text('SELECT current_schema()')).scalar() == 't3'"
        f" and not os.path.exists({str(flag)!r}):\n"
        f"    open({str(flag)!r}, 'w').close()\n"
        "    op.execute('SELECT pg_sleep(60)')",
    )
    (tmp_path / "ftapp.py").write_text(APP_FILE.format(root=str(Path(__file__).parents[1])))
    env = {**os.environ, "FT_URL": url, "FT_MDIR": str(mdir), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "flask", "--app", "ftapp", "tenants", "migrate", "--jobs", jobs]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "Traceback" not in out
    before = versions(app)
    assert before["t3"] == ("r1",) and "color" not in columns(app, "t3")
    for n in names:  # every tenant is at one revision or the other, with the matching columns
        assert ("color" in columns(app, n)) == (before[n] == ("r2",))
    done_before = {n for n, v in before.items() if v == ("r2",)}
    assert 0 < len(done_before) < len(names)
    proc2 = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc2.returncode == 0, proc2.stdout + proc2.stderr
    left = len(names) - len(done_before)
    assert f"Migrated {left}, skipped {len(done_before)}" in proc2.stdout
    assert set(versions(app).values()) == {("r2",)}
    engine_of(app).dispose()


# -- the example app's migrations ------------------------------------------------------------------


def test_example_app_migrations_match_its_models(fresh_db: str) -> None:
    """examples/flask_app: 'flask db upgrade' builds the shared tables, new tenants are at the
    tenant head, and neither environment has changes left to autogenerate."""
    example = Path(__file__).resolve().parents[1] / "examples" / "flask_app"
    env = {**os.environ, "DATABASE_URL": fresh_db, "PYTHONWARNINGS": "ignore"}

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app.py", *args],
            cwd=example,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(*args: str) -> str:
        proc = flask(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout + proc.stderr

    ok("db", "upgrade")
    assert "No new upgrade operations detected" in ok("db", "check")
    (tenant_rev,) = (example / "migrations" / "tenants" / "versions").glob("*.py")
    head = tenant_rev.name.split("_")[0]
    ok("tenants", "create", "acme", "--domain", "acme.example.com")
    assert f"{head} (head)" in ok("tenants", "list")  # so 'tenants migrate' skips it
    assert "OK: 1 tenant(s)" in ok("tenants", "check")  # includes the models-vs-migrations drift
