"""The public API as the original flask-tenants READMEs (0.4.2, 0.4.7, 0.5) show it, end to end
on a real PostgreSQL: every entry point, both CRUD styles, the error handlers, the lifecycle done
through the ORM from a public-host view, and the errors for misuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Integer, String, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from flask_tenants.declarative import BaseDomain as DeclBaseDomain
from flask_tenants.declarative import BaseTenant as DeclBaseTenant
from flask_tenants.declarative import BaseTenantModel as DeclBaseTenantModel
from flask_tenants.models import shared_tables
from tests.sample_app import (
    PUBLIC_URL,
    Domain,
    Tank,
    Tenant,
    catalog,
    engine_of,
    register_error_handlers,
    schema_names,
    tenancy_of,
    tenant_url,
)

pytestmark = pytest.mark.usefixtures("dispose_engines")

# -- the names ---------------------------------------------------------------------------------


def test_every_readme_import_works() -> None:
    import flask_tenants
    from flask_tenants import (  # noqa: F401 - the README's import line
        BaseDomain,
        BaseTenant,
        MultiTenancyMiddleware,
        create_tenancy,
        db,
        init_app,
    )
    from flask_tenants.exceptions import (
        SchemaCreationError,
        SchemaDropError,
        SchemaRenameError,
        TableCreationError,
        TenantActivationError,
        TenantNotFoundError,
    )
    from flask_tenants.models import BaseTenantModel
    from flask_tenants.models import db as models_db
    from flask_tenants.utils import with_db

    assert models_db is db
    assert isinstance(db, SQLAlchemy)
    assert callable(with_db) and callable(init_app) and callable(create_tenancy)
    for base in (BaseTenant, BaseDomain, BaseTenantModel):
        assert base.__abstract__ is True
    assert issubclass(MultiTenancyMiddleware, flask_tenants.FlaskTenants)
    errors = [
        SchemaCreationError,
        TableCreationError,
        SchemaRenameError,
        SchemaDropError,
        TenantActivationError,
        TenantNotFoundError,
    ]
    for exc in errors:
        assert issubclass(exc, flask_tenants.FlaskTenantsError)
        assert exc.__doc__
    assert TenantNotFoundError().code == 404
    assert TenantActivationError().code == 403
    for name in flask_tenants.__all__:
        assert getattr(flask_tenants, name) is not None, name


# -- one scenario, many ways to wire it -------------------------------------------------------


class SessionStyle:
    """How the views reach the database: ``g.db_session`` (0.4.7+) or ``with_db()`` (0.4.2)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, fn: Callable[[Any], Any]) -> Any:
        if self.name == "g.db_session":
            return fn(g.db_session)
        from flask_tenants import db
        from flask_tenants.utils import with_db

        with with_db(db) as session:  # the 0.4.2 README's call, with the db argument
            return fn(session)


def readme_blueprints(
    style: SessionStyle, tenant_model: Any = Tenant, domain_model: Any = Domain, tank: Any = Tank
) -> tuple[Blueprint, Blueprint]:
    """The public and tenant routes of the README's sample app (tenants, tanks)."""
    public_bp = Blueprint("public_bp", __name__)
    tank_bp = Blueprint("tank_bp", __name__)

    def find(session: Any, name: str) -> Any:
        return session.execute(select(tenant_model).where(tenant_model.name == name)).scalar_one()

    @public_bp.route("/")
    def index():  # type: ignore[no-untyped-def]
        return jsonify({"tenant": g.tenant})

    @public_bp.route("/tenants", methods=["POST"])
    def create():  # type: ignore[no-untyped-def]
        data = request.get_json()

        def work(session: Any) -> str:
            tenant = tenant_model(name=data["name"])
            session.add(tenant)
            session.flush()
            extra = {"tenant_id": tenant.id} if "tenant_id" in domain_model.__table__.c else {}
            session.add(
                domain_model(
                    tenant_name=tenant.name,
                    domain_name=data["domain"],
                    is_primary=True,
                    **extra,
                )
            )
            session.commit()
            return str(tenant.name)

        return jsonify({"name": style.run(work)}), 201

    @public_bp.route("/tenants")
    def list_tenants():  # type: ignore[no-untyped-def]
        if hasattr(tenant_model, "query"):  # Flask-SQLAlchemy's Tenant.query, as the README
            names = [t.name for t in tenant_model.query.all()]
        else:
            names = list(style.run(lambda s: s.scalars(select(tenant_model.name)).all()))
        return jsonify(sorted(names))

    @public_bp.route("/tenants/<name>/rename", methods=["POST"])
    def rename(name: str):  # type: ignore[no-untyped-def]
        def work(session: Any) -> None:
            find(session, name).name = request.get_json()["new"]
            session.commit()

        style.run(work)
        return jsonify({"ok": True})

    @public_bp.route("/tenants/<name>/deactivate", methods=["POST"])
    def deactivate(name: str):  # type: ignore[no-untyped-def]
        def work(session: Any) -> None:
            find(session, name).deactivated = True
            session.commit()

        style.run(work)
        return jsonify({"ok": True})

    @public_bp.route("/tenants/<name>", methods=["DELETE"])
    def delete(name: str):  # type: ignore[no-untyped-def]
        def work(session: Any) -> None:
            for d in session.scalars(
                select(domain_model).where(domain_model.tenant_name == name)
            ).all():
                session.delete(d)
            session.flush()
            session.delete(find(session, name))
            session.commit()

        style.run(work)
        return jsonify({"ok": True})

    @tank_bp.route("/tanks")
    def list_tanks():  # type: ignore[no-untyped-def]
        names = style.run(lambda s: s.scalars(select(tank.name).order_by(tank.id)).all())
        return jsonify({"tenant": g.tenant, "tanks": list(names)})

    @tank_bp.route("/tanks", methods=["POST"])
    def add_tank():  # type: ignore[no-untyped-def]
        def work(session: Any) -> int:
            t = tank(name=request.get_json()["name"])
            session.add(t)
            session.commit()
            return int(t.id)

        return jsonify({"id": style.run(work)}), 201

    @tank_bp.route("/tanks/text")
    def tanks_by_text():  # type: ignore[no-untyped-def]
        # the app's own registered Flask-SQLAlchemy session (db.session), plain SQL
        fsa = current_app.extensions.get("sqlalchemy")
        if fsa is None:
            return jsonify({"tanks": None})
        rows = fsa.session.execute(text("SELECT name FROM tanks ORDER BY id")).scalars().all()
        return jsonify({"tanks": list(rows)})

    return public_bp, tank_bp


def register_readme_blueprints(
    app: Flask, tenancy: Any, style: SessionStyle, **models: Any
) -> None:
    """The README's sample app.py: public and tenant root blueprints with ordinary ones inside."""
    public_bp, tank_bp = readme_blueprints(style, **models)
    root_public_bp = tenancy.create_public_blueprint("public")
    root_tank_bp = tenancy.create_tenant_blueprint("tank")
    root_public_bp.register_blueprint(public_bp)
    root_tank_bp.register_blueprint(tank_bp)
    app.register_blueprint(root_public_bp)
    app.register_blueprint(root_tank_bp)


def new_flask_app(url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    return app


# Each wiring returns the extension object; all of them get the same blueprints afterwards.


def wire_readme_042(app: Flask) -> Any:
    from flask_tenants import create_tenancy, db
    from flask_tenants import init_app as tenants_init_app

    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    return create_tenancy(app, db, tenant_url_prefix="/_tenant")


def wire_readme_047(app: Flask) -> Any:
    register_error_handlers(app)
    return wire_readme_042(app)


def wire_class_05(app: Flask) -> Any:
    from flask_tenants import FlaskTenants, db

    return FlaskTenants(
        app, tenant_model=Tenant, domain_model=Domain, db=db, tenant_url_prefix="/_tenant"
    ).init()


def wire_factory(app: Flask) -> Any:
    from flask_tenants import FlaskTenants, db

    tenants = FlaskTenants(
        tenant_model=Tenant, domain_model=Domain, db=db, tenant_url_prefix="/_tenant"
    )
    tenants.init_app(app)
    return tenants


def wire_middleware_after_init_app(app: Flask) -> Any:
    from flask_tenants import MultiTenancyMiddleware, db
    from flask_tenants import init_app as tenants_init_app

    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    return MultiTenancyMiddleware(app, db, tenant_url_prefix="/_tenant")


def wire_middleware_alone(app: Flask) -> Any:
    from flask_tenants import MultiTenancyMiddleware, db

    return MultiTenancyMiddleware(app, db)  # models found on db, default prefix


def wire_basic_setup(app: Flask) -> Any:
    # README "Basic Setup": the app makes its own SQLAlchemy(app); the models live on
    # flask_tenants.db; create_tenancy gets the app's own db.
    from flask_tenants import create_tenancy
    from flask_tenants import init_app as tenants_init_app

    own_db = SQLAlchemy(app)
    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    tenancy = create_tenancy(app, own_db, tenant_url_prefix="/_tenant")
    assert app.extensions["sqlalchemy"] is own_db
    return tenancy


def wire_fsa_factory_order(app: Flask) -> Any:
    from flask_tenants import FlaskTenants, db

    db.init_app(app)  # Flask-SQLAlchemy's usual order: the db first, then the extension
    tenants = FlaskTenants(tenant_model=Tenant, domain_model=Domain, db=db)
    tenants.init_app(app)
    return tenants


def wire_fsa_factory_order_042(app: Flask) -> Any:
    from flask_tenants import db

    db.init_app(app)
    return wire_readme_042(app)


WIRINGS = {
    "readme_042": (wire_readme_042, "with_db"),
    "readme_047": (wire_readme_047, "g.db_session"),
    "class_05": (wire_class_05, "g.db_session"),
    "factory": (wire_factory, "g.db_session"),
    "middleware_after_init_app": (wire_middleware_after_init_app, "g.db_session"),
    "middleware_alone": (wire_middleware_alone, "with_db"),
    "basic_setup_own_db": (wire_basic_setup, "g.db_session"),
    "fsa_factory_order": (wire_fsa_factory_order, "g.db_session"),
    "fsa_factory_order_042": (wire_fsa_factory_order_042, "with_db"),
}


def build_readme_app(url: str, wiring: str) -> Flask:
    wire, style = WIRINGS[wiring]
    app = new_flask_app(url)
    tenancy = wire(app)
    register_readme_blueprints(app, tenancy, SessionStyle(style))
    with app.app_context():
        from flask_tenants import db

        db.create_all()
    return app


def call(client: FlaskClient, method: str, path: str, base: str, **kw: Any) -> Any:
    response = client.open(path, method=method, base_url=base, **kw)
    assert response.status_code < 500, response.get_data(as_text=True)
    return response


def domain_rows(app: Flask) -> set[tuple[str, str]]:
    table = app.extensions["flask_tenants"].domain_model.__table__
    with engine_of(app).connect() as conn:
        return {(r.domain_name, r.tenant_name) for r in conn.execute(table.select())}


def run_readme_scenario(app: Flask, handlers: bool) -> None:
    """Create, use, list, rename, deactivate and delete tenants the way the README's users do."""
    c = app.test_client()
    engine = engine_of(app)
    assert call(c, "GET", "/", PUBLIC_URL).json == {"tenant": "public"}
    for name in ("acme", "globex"):
        r = call(
            c, "POST", "/tenants", PUBLIC_URL, json={"name": name, "domain": f"{name}.test.io"}
        )
        assert r.status_code == 201 and r.json == {"name": name}
    assert {"acme", "globex"} <= schema_names(engine)
    assert call(c, "GET", "/tenants", PUBLIC_URL).json == ["acme", "globex"]
    for name in ("acme", "globex"):
        for i in range(2):
            r = call(c, "POST", "/tanks", f"http://{name}.test.io", json={"name": f"{name}-{i}"})
            assert r.status_code == 201
    for name in ("acme", "globex"):
        r = call(c, "GET", "/tanks", f"http://{name}.test.io")
        assert r.json == {"tenant": name, "tanks": [f"{name}-0", f"{name}-1"]}
        by_text = call(c, "GET", "/tanks/text", f"http://{name}.test.io").json["tanks"]
        assert by_text in (None, [f"{name}-0", f"{name}-1"])
    # the tenant-specific table exists in each tenant schema, never in public
    assert catalog(engine, "SELECT to_regclass('public.tanks') IS NULL") == [(True,)]

    # rename: the schema follows, the domain follows, the data stays
    r = call(c, "POST", "/tenants/acme/rename", PUBLIC_URL, json={"new": "acme2"})
    assert r.status_code == 200
    schemas = schema_names(engine)
    assert "acme2" in schemas and "acme" not in schemas
    assert ("acme.test.io", "acme2") in domain_rows(app)
    r = call(c, "GET", "/tanks", "http://acme.test.io")
    assert r.json == {"tenant": "acme2", "tanks": ["acme-0", "acme-1"]}
    assert call(c, "GET", "/tanks", tenant_url("acme2")).json["tenant"] == "acme2"

    # deactivation: 403 through TenantActivationError
    call(c, "POST", "/tenants/globex/deactivate", PUBLIC_URL)
    r = call(c, "GET", "/tanks", "http://globex.test.io")
    assert r.status_code == 403
    if handlers:
        assert r.json["error"] == "TenantActivationError"

    # delete: domains, then the tenant, then commit drops the schema
    call(c, "DELETE", "/tenants/acme2", PUBLIC_URL)
    schemas = schema_names(engine)
    assert "acme2" not in schemas and "globex" in schemas
    assert call(c, "GET", "/tenants", PUBLIC_URL).json == ["globex"]
    r = call(c, "GET", "/tanks", "http://acme.test.io")
    assert r.status_code == 404
    if handlers:
        assert r.json["error"] == "TenantNotFoundError"
    # the other tenant's data is untouched
    assert catalog(engine, "SELECT name FROM globex.tanks ORDER BY id") == [
        ("globex-0",),
        ("globex-1",),
    ]
    r = call(c, "GET", "/tanks", "http://nobody.test.io")
    assert r.status_code == 404


@pytest.mark.parametrize("wiring", sorted(WIRINGS))
def test_readme_app_end_to_end(fresh_db: str, wiring: str) -> None:
    # the README's plain postgresql:// URL: whatever driver the installed SQLAlchemy picks
    app = build_readme_app(fresh_db, wiring)
    run_readme_scenario(app, handlers=wiring == "readme_047")


@pytest.mark.parametrize("wiring", ["readme_042", "readme_047"])
def test_readme_app_on_both_drivers(db_url: str, wiring: str) -> None:
    app = build_readme_app(db_url, wiring)
    run_readme_scenario(app, handlers=wiring == "readme_047")


def test_unhandled_resolution_errors_are_404_and_403_not_500(db_url: str) -> None:
    app = build_readme_app(db_url, "class_05")  # no error handlers registered
    tenancy_of(app).create_tenant("acme", domains=["acme.test.io"])
    tenancy_of(app).deactivate_tenant("acme")
    c = app.test_client()
    r = c.get("/tanks", base_url="http://acme.test.io")
    assert r.status_code == 403
    assert "deactivated" in r.get_data(as_text=True)
    r = c.get("/tanks", base_url="http://nobody.test.io")
    assert r.status_code == 404
    tenancy_of(app).activate_tenant("acme")
    assert c.get("/tanks", base_url="http://acme.test.io").json == {"tenant": "acme", "tanks": []}


# -- misuse ------------------------------------------------------------------------------------


def _double_inits() -> dict[str, Callable[[Flask], Any]]:
    def twice(
        wire: Callable[[Flask], Any], again: Callable[[Flask], Any]
    ) -> Callable[[Flask], Any]:
        def run(app: Flask) -> Any:
            wire(app)
            return again(app)

        return run

    def ext_init(app: Flask) -> Any:
        tenancy_of(app).init_app(app)

    def init_app_again(app: Flask) -> Any:
        from flask_tenants import init_app

        init_app(app, tenant_model=Tenant, domain_model=Domain)

    return {
        "create_tenancy_twice": twice(wire_readme_042, wire_middleware_alone),
        "init_twice": twice(wire_class_05, ext_init),
        "factory_then_class": twice(wire_factory, wire_class_05),
        "init_app_after_setup": twice(wire_class_05, init_app_again),
        "init_app_twice": twice(init_app_again, init_app_again),
    }


@pytest.mark.parametrize("case", sorted(_double_inits()))
def test_initialising_twice_says_what_to_do(fresh_db: str, case: str) -> None:
    from flask_tenants.exceptions import ConfigurationError

    app = new_flask_app(fresh_db)
    with pytest.raises(ConfigurationError) as info:
        _double_inits()[case](app)
    message = str(info.value)
    assert "already" in message and "once" in message


def test_extension_on_an_app_it_was_not_initialised_on(fresh_db: str) -> None:
    from flask_tenants import with_db
    from flask_tenants.exceptions import ConfigurationError

    app = build_readme_app(fresh_db, "factory")
    tenancy = tenancy_of(app)
    other = new_flask_app(fresh_db)
    with other.app_context():
        with pytest.raises(ConfigurationError, match="not initialised on this app"):
            tenancy.create_tenant("acme")
        with pytest.raises(ConfigurationError, match="init"):
            with with_db("acme"):
                pass
    with pytest.raises(ConfigurationError, match="init_app"):
        tenancy.state_for(other)
    # the factory-form object has no app of its own: outside any app context it says so
    with pytest.raises(ConfigurationError, match="app_context"):
        tenancy.create_tenant("acme")
    with app.app_context():
        tenancy.create_tenant("acme")
    assert "acme" in schema_names(engine_of(app))


def test_missing_database_url_is_a_clear_error() -> None:
    from flask_tenants.exceptions import ConfigurationError

    app = Flask(__name__)
    with pytest.raises(ConfigurationError, match="SQLALCHEMY_DATABASE_URI"):
        wire_readme_042(app)


# -- two apps in one process -------------------------------------------------------------------


def test_two_apps_in_one_process(new_database: Callable[..., str]) -> None:
    apps = [
        build_readme_app(new_database(driver), "class_05") for driver in ("psycopg2", "psycopg")
    ]
    clients = [a.test_client() for a in apps]
    for i, c in enumerate(clients):
        # the same tenant name in both apps, with different data
        call(c, "POST", "/tenants", PUBLIC_URL, json={"name": "acme", "domain": "acme.test.io"})
        call(c, "POST", "/tanks", "http://acme.test.io", json={"name": f"app{i}"})
    for _ in range(3):  # interleaved
        for i, c in enumerate(clients):
            r = call(c, "GET", "/tanks", "http://acme.test.io")
            assert r.json == {"tenant": "acme", "tanks": [f"app{i}"]}
    # lifecycle in one app does not touch the other
    call(clients[0], "POST", "/tenants/acme/rename", PUBLIC_URL, json={"new": "acme_one"})
    assert "acme_one" in schema_names(engine_of(apps[0]))
    assert "acme" in schema_names(engine_of(apps[1]))
    assert call(clients[1], "GET", "/tanks", "http://acme.test.io").json["tenant"] == "acme"
    assert call(clients[0], "GET", "/tanks", "http://acme.test.io").json["tenant"] == "acme_one"
    with apps[1].app_context():
        tenancy_of(apps[1]).create_tenant("only_two")
    assert "only_two" not in schema_names(engine_of(apps[0]))
    assert "only_two" in schema_names(engine_of(apps[1]))


# -- plain SQLAlchemy models, no Flask-SQLAlchemy ------------------------------------------------


# table names of their own: other test modules may declare 'tenants' on the same Base
class DeclTenant(DeclBaseTenant):
    __tablename__ = "decl_tenants"
    deactivated: Mapped[bool] = mapped_column(default=False)


class DeclDomain(DeclBaseDomain):
    __tablename__ = "decl_domains"
    tenant_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("decl_tenants.name", onupdate="CASCADE"), index=True
    )


class DeclTank(DeclBaseTenantModel):
    __tablename__ = "tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


def test_declarative_models_without_flask_sqlalchemy(db_url: str) -> None:
    from flask_tenants import FlaskTenants

    tenant, domain, tank = DeclTenant, DeclDomain, DeclTank
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = db_url
    tenancy = FlaskTenants(app, tenant_model=tenant, domain_model=domain).init()
    register_readme_blueprints(
        app,
        tenancy,
        SessionStyle("g.db_session"),
        tenant_model=tenant,
        domain_model=domain,
        tank=tank,
    )
    engine = engine_of(app)
    assert make_url(str(engine.url)).drivername == make_url(db_url).drivername
    metadata = tenant.__table__.metadata
    mine = [t for t in shared_tables(metadata) if t.name in ("decl_tenants", "decl_domains")]
    metadata.create_all(engine, tables=mine)
    run_readme_scenario(app, handlers=False)
