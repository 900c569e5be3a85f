"""The pytest plugin, run the way users run it: in a separate pytest session (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from flask import Flask, g, jsonify
from sqlalchemy import Integer, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants import FlaskTenants
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin, shared_tables


class Base(DeclarativeBase):
    pass


class Tenant(TenantMixin, Base):
    __tablename__ = "tenants"


class Domain(DomainMixin, Base):
    __tablename__ = "domains"


class Note(TenantModelMixin, Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


@pytest.fixture
def tenants_app(tenants_database_url):
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = tenants_database_url
    ext = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain).init()
    bp = ext.create_tenant_blueprint("notes")

    @bp.route("/notes")
    def notes():
        return jsonify(sorted(n.text for n in g.db_session.scalars(select(Note))))

    @bp.route("/notes", methods=["POST"])
    def add_note():
        g.db_session.add(Note(text="posted"))
        g.db_session.commit()
        return "", 201

    @bp.route("/leaky")
    def leaky():  # a bug: reads one fixed tenant's schema whatever the request's tenant
        rows = g.db_session.execute(text("SELECT text FROM isolation1.notes")).scalars()
        return jsonify(sorted(rows))

    app.register_blueprint(bp)
    Base.metadata.create_all(ext.state_for(app).engine, tables=shared_tables(Base.metadata))
    yield app
    ext.state_for(app).engine.dispose()
"""

TESTS = """
import pytest
from sqlalchemy import text

from flask_tenants import with_db
from flask_tenants.testing.plugin import assert_tenant_isolation
from conftest import Note


def _schemas(app):
    engine = app.extensions["flask_tenants"].engine
    with engine.connect() as c:
        return sorted(r[0] for r in c.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%' "
            "OR nspname LIKE 'isolation%'")))


@pytest.mark.parametrize("round", range(5))
def test_two_tenants_each_time(tenants_app, tenants_factory, tenants_client, round):
    a, b = tenants_factory(), tenants_factory()
    assert (a, b) == ("tenant1", "tenant2")
    ca, cb = tenants_client(a), tenants_client(b)
    assert ca.get("/notes").json == []  # emptied although the previous round added a note
    assert ca.post("/notes").status_code == 201
    assert ca.get("/notes").json == ["posted"]
    assert cb.get("/notes").json == []
    assert _schemas(tenants_app) in (["tenant1", "tenant2"],
                                     ["isolation1", "isolation2", "tenant1", "tenant2"])


def test_named_tenant_and_with_db(tenants_app, tenants_factory, tenants_client):
    name = tenants_factory("acme")
    with tenants_app.app_context(), with_db(name) as s:
        s.add(Note(text="hello"))
        s.commit()
    assert tenants_client(name).get("/notes").json == ["hello"]


def _seed(session, tenant):
    session.add(Note(text=f"note-of-{tenant}"))
    return f"note-of-{tenant}"


def test_isolation_helper_passes_an_isolated_view(tenants_app):
    assert_tenant_isolation(tenants_app, "/notes", _seed)


def test_isolation_helper_catches_a_leak(tenants_app):
    with pytest.raises(AssertionError, match="tenant 'isolation2' saw tenant 'isolation1'"):
        assert_tenant_isolation(tenants_app, "/leaky", _seed)


def test_isolation_helper_refuses_a_view_that_shows_nothing(tenants_app):
    with pytest.raises(AssertionError, match="missing from its response"):
        assert_tenant_isolation(tenants_app, "/notes", lambda s, t: "something-else")
"""


@pytest.fixture
def inner_env(
    pytester: pytest.Pytester, pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTS_TEST_DATABASE_URL", pg_server_url)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings =\n    error\n"
    )


def test_plugin_is_registered_in_this_run(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("flask_tenants")


def test_plugin_fixtures_end_to_end(pytester: pytest.Pytester, inner_env: None) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_notes=TESTS)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)


def test_nothing_starts_unless_used_and_a_missing_app_says_what_to_do(
    pytester: pytest.Pytester, inner_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENANTS_TEST_DATABASE_URL")
    pytester.makeconftest(
        "import pytest\n"
        "import flask_tenants.testing.server as s\n"
        "def _boom(*a, **k):\n"
        "    raise AssertionError('a server was started')\n"
        "@pytest.fixture(autouse=True)\n"
        "def _no_server(monkeypatch):\n"
        "    monkeypatch.setattr(s, 'start_embedded_postgres', _boom)\n"
    )
    pytester.makepyfile(
        test_plain="def test_plain():\n    assert True\n",
        test_x="def test_x(tenants_factory):\n    pass\n",
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*define a fixture named 'tenants_app'*"])
    assert "a server was started" not in result.stdout.str()
