"""Tenant lifecycle on a real PostgreSQL: create, rename, delete -- through the ORM and through the
tenancy API, with commit and with rollback; failed creation leaves nothing; constraints and
indexes exist in every tenant schema; a pool of one connection neither hangs nor deadlocks;
deleting a tenant never touches anyone else's data."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify
from sqlalchemy import (
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from flask_tenants import FlaskTenants, with_db
from flask_tenants.exceptions import (
    ConfigurationError,
    DomainError,
    SchemaDropError,
    TableCreationError,
    TenantExistsError,
    TenantNotFoundError,
)
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin, TenantSQLAlchemy
from tests.sample_app import (
    PUBLIC_URL,
    Domain,
    Tank,
    Tenant,
    catalog,
    engine_of,
    make_app_with,
    schema_names,
    seed_tanks,
    tables_in,
    tenancy_of,
    tenant_url,
)
from tests.sample_app import db as readme_db

pytestmark = pytest.mark.usefixtures("dispose_engines")

# -- a richer model set, on its own Flask-SQLAlchemy instance ----------------------------------
#    (placeholder-schema tables as the original BaseTenantModel made them, foreign keys between
#    tenant tables and to shared tables, unique constraints, indexes, an enum, a check)

rich_db = TenantSQLAlchemy()


class RichTenant(TenantMixin, rich_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "tenants"  # no 'deactivated' column


class RichDomain(DomainMixin, rich_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "domains"


class Mood(enum.Enum):
    happy = "happy"
    sad = "sad"


class Category(rich_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "categories"
    __table_args__ = {"schema": "tenant"}  # the original BaseTenantModel's placeholder schema
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Item(TenantModelMixin, rich_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("category_id", "name", name="uq_items_category_name"),
        CheckConstraint("length(sku) > 0", name="ck_items_sku"),
        Index("ix_items_lower_name", text("lower(name)")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    mood: Mapped[Mood] = mapped_column(Enum(Mood, name="mood"), default=Mood.happy)
    category_id: Mapped[int] = mapped_column(ForeignKey("tenant.categories.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)


def make_rich_app(url: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(config)
    FlaskTenants(app, tenant_model=RichTenant, domain_model=RichDomain, db=rich_db).init()
    with app.app_context():
        rich_db.create_all()
    return app


# -- a model set whose tenant table cannot be created -------------------------------------------

broken_db = TenantSQLAlchemy()


class BrokenTenant(TenantMixin, broken_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "tenants"


class BrokenDomain(DomainMixin, broken_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "domains"


class Fine(TenantModelMixin, broken_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "fine"  # created first, so a half-made schema would have it
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Broken(TenantModelMixin, broken_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "broken"
    __table_args__ = (CheckConstraint("no_such_column > 0", name="ck_broken"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fine_id: Mapped[int] = mapped_column(ForeignKey("fine.id"))
    stamp: Mapped[str] = mapped_column(String(10), server_default=text("no_such_function()"))


def make_broken_app(url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    FlaskTenants(app, tenant_model=BrokenTenant, domain_model=BrokenDomain, db=broken_db).init()
    with app.app_context():
        broken_db.create_all()
    return app


# -- helpers -----------------------------------------------------------------------------------


def tenant_rows(app: Flask) -> list[str]:
    table = app.extensions["flask_tenants"].tenant_model.__table__
    return sorted(r[0] for r in catalog(engine_of(app), f"SELECT name FROM public.{table.name}"))  # noqa: S608


def domains_of(app: Flask) -> dict[str, tuple[str, bool]]:
    return {
        r[0]: (r[1], r[2])
        for r in catalog(
            engine_of(app), "SELECT domain_name, tenant_name, is_primary FROM public.domains"
        )
    }


def tanks_in(app: Flask, schema: str) -> list[str]:
    return [r[0] for r in catalog(engine_of(app), f'SELECT name FROM "{schema}".tanks ORDER BY id')]  # noqa: S608


def assert_state(app: Flask, present: set[str], absent: set[str]) -> None:
    """Tenants in ``present`` have a row and a schema; those in ``absent`` have neither."""
    rows, schemas = set(tenant_rows(app)), schema_names(engine_of(app))
    assert present <= rows and present <= schemas, (rows, schemas)
    assert not (absent & rows) and not (absent & schemas), (rows, schemas)


@pytest.fixture
def app(db_url: str) -> Flask:
    """The README app with tenants acme (2 tanks) and globex (1 tank)."""
    app = make_app_with(db_url)
    seed_tanks(app, {"acme": 2, "globex": 1})
    return app


# -- through the ORM ---------------------------------------------------------------------------


def orm(app: Flask, work: Callable[[Any], None], commit: bool) -> None:
    """Run ``work(session)`` on Flask-SQLAlchemy's session, then commit or roll back."""
    with app.app_context():
        session = readme_db.session
        work(session)
        session.flush()
        if commit:
            session.commit()
        else:
            session.rollback()


def orm_create(session: Any) -> None:
    tenant = Tenant(name="initech")
    session.add(tenant)
    session.flush()
    session.add(Domain(tenant_id=tenant.id, tenant_name="initech", domain_name="initech.test"))


def orm_rename(session: Any) -> None:
    session.scalars(select(Tenant).filter_by(name="acme")).one().name = "acme_corp"


def orm_delete(session: Any) -> None:
    for d in session.scalars(select(Domain).filter_by(tenant_name="acme")):
        session.delete(d)
    session.flush()
    session.delete(session.scalars(select(Tenant).filter_by(name="acme")).one())


def test_orm_lifecycle_with_rollback_changes_nothing(app: Flask) -> None:
    before = (schema_names(engine_of(app)), tenant_rows(app), domains_of(app))
    for work in (orm_create, orm_rename, orm_delete):
        orm(app, work, commit=False)
        assert (schema_names(engine_of(app)), tenant_rows(app), domains_of(app)) == before
        assert tanks_in(app, "acme") == ["acme-0", "acme-1"]
    c = app.test_client()
    assert c.get("/tanks", base_url=tenant_url("acme")).json["tanks"] == ["acme-0", "acme-1"]
    assert c.get("/tanks", base_url="http://initech.test").status_code == 404


def test_orm_lifecycle_with_commit(app: Flask) -> None:
    c = app.test_client()
    orm(app, orm_create, commit=True)
    assert_state(app, {"initech", "acme", "globex"}, set())
    assert tables_in(engine_of(app), "initech") == {"tanks"}
    assert c.get("/tanks", base_url="http://initech.test").json == {
        "tenant": "initech",
        "tanks": [],
    }
    orm(app, orm_rename, commit=True)
    assert_state(app, {"acme_corp"}, {"acme"})
    assert tanks_in(app, "acme_corp") == ["acme-0", "acme-1"]
    assert domains_of(app)["acme.example.com"][0] == "acme_corp"
    r = c.get("/tanks", base_url=tenant_url("acme"))  # its domain follows the rename
    assert r.json == {"tenant": "acme_corp", "tanks": ["acme-0", "acme-1"]}
    with app.app_context():
        tenant = Tenant.query.filter_by(name="acme_corp").one()
        for d in Domain.query.filter_by(tenant_name="acme_corp"):
            readme_db.session.delete(d)
        readme_db.session.flush()
        readme_db.session.delete(tenant)
        readme_db.session.commit()
    assert_state(app, {"initech", "globex"}, {"acme_corp", "acme"})
    assert c.get("/tanks", base_url=tenant_url("acme")).status_code == 404
    assert tanks_in(app, "globex") == ["globex-0"]


# -- through the tenancy API --------------------------------------------------------------------


def test_api_lifecycle(app: Flask) -> None:
    tenancy = tenancy_of(app)
    c = app.test_client()

    def tenant_at(host: str) -> Any:
        r = c.get("/tanks", base_url=f"http://{host}")
        return r.json["tenant"] if r.status_code == 200 else r.status_code

    tenancy.create_tenant("initech", domains=["initech.test", "Shop.Initech.Test"], address="x")
    assert_state(app, {"initech"}, set())
    assert domains_of(app)["initech.test"] == ("initech", True)
    assert domains_of(app)["shop.initech.test"] == ("initech", False)
    assert tenant_at("shop.initech.test") == "initech"
    with app.app_context():
        assert Tenant.query.filter_by(name="initech").one().address == "x"

    tenancy.rename_tenant("initech", "initrode")
    assert_state(app, {"initrode"}, {"initech"})
    assert tenant_at("initech.test") == "initrode"

    tenancy.add_domain("initrode", "initrode.test", primary=True)
    assert domains_of(app)["initrode.test"] == ("initrode", True)
    assert domains_of(app)["initech.test"] == ("initrode", False)
    assert tenant_at("initrode.test") == "initrode"
    tenancy.set_primary_domain("initech.test")
    assert domains_of(app)["initech.test"] == ("initrode", True)
    assert domains_of(app)["initrode.test"] == ("initrode", False)
    tenancy.remove_domain("initrode.test")
    assert "initrode.test" not in domains_of(app)
    assert tenant_at("initrode.test") == 404

    tenancy.deactivate_tenant("initrode")
    assert tenant_at("initech.test") == 403
    tenancy.activate_tenant("initrode")
    assert tenant_at("initech.test") == "initrode"
    assert tenancy.get_tenant("initrode").name == "initrode"

    tenancy.delete_tenant("initrode")
    assert_state(app, {"acme", "globex"}, {"initrode"})
    assert not any(t == "initrode" for t, _ in domains_of(app).values())
    assert tenant_at("initech.test") == 404
    assert tanks_in(app, "acme") == ["acme-0", "acme-1"]


def test_api_errors_change_nothing(app: Flask) -> None:
    tenancy = tenancy_of(app)
    before = (schema_names(engine_of(app)), tenant_rows(app), domains_of(app))
    attempts: list[tuple[type[Exception], Callable[[], Any]]] = [
        (TenantExistsError, lambda: tenancy.create_tenant("acme")),
        (DomainError, lambda: tenancy.create_tenant("initech", domains=["acme.example.com"])),
        (DomainError, lambda: tenancy.create_tenant("initech", domains=["a.test", "a.test"])),
        (DomainError, lambda: tenancy.create_tenant("initech", domains=["ok.test", "bad host"])),
        (TenantExistsError, lambda: tenancy.rename_tenant("acme", "globex")),
        (TenantNotFoundError, lambda: tenancy.rename_tenant("nobody", "somebody")),
        (TenantNotFoundError, lambda: tenancy.delete_tenant("nobody")),
        (TenantNotFoundError, lambda: tenancy.get_tenant("nobody")),
        (DomainError, lambda: tenancy.add_domain("acme", "globex.example.com")),
        (DomainError, lambda: tenancy.add_domain("acme", "127.0.0.1")),
        # hosts that are always public can never select a tenant
        (DomainError, lambda: tenancy.add_domain("acme", "www.acme.test")),
        (DomainError, lambda: tenancy.add_domain("acme", "intranet")),
        (DomainError, lambda: tenancy.create_tenant("initech", domains=["local.initech.io"])),
        (DomainError, lambda: tenancy.remove_domain("nobody.test")),
        (DomainError, lambda: tenancy.set_primary_domain("nobody.test")),
        # a domain row beats the subdomain fallback: acme may not take globex's subdomain
        (DomainError, lambda: tenancy.add_domain("acme", "globex.anything.test")),
        (DomainError, lambda: tenancy.create_tenant("initech", domains=["acme.other.test"])),
    ]
    for exc, attempt in attempts:
        with pytest.raises(exc):
            attempt()
        assert (schema_names(engine_of(app)), tenant_rows(app), domains_of(app)) == before
    # its own name's subdomains are fine for a tenant
    tenancy.add_domain("acme", "acme.anything.test")
    with engine_of(app).begin() as conn:
        conn.execute(text("DELETE FROM domains WHERE domain_name = 'acme.anything.test'"))
    # a schema left over by someone else is not adopted
    with engine_of(app).begin() as conn:
        conn.execute(text("CREATE SCHEMA ghost"))
    with pytest.raises(TenantExistsError, match="ghost"):
        tenancy.create_tenant("ghost")
    assert "ghost" not in tenant_rows(app)


def test_deactivation_without_the_column_says_what_to_add(fresh_db: str) -> None:
    app = make_rich_app(fresh_db)
    tenancy = tenancy_of(app)
    tenancy.create_tenant("acme")
    for op in (tenancy.deactivate_tenant, tenancy.activate_tenant):
        with pytest.raises(ConfigurationError, match="deactivated = db.Column"):
            op("acme")


# -- failed creation -----------------------------------------------------------------------------


def test_failed_table_creation_leaves_no_row_and_no_schema(db_url: str) -> None:
    app = make_broken_app(db_url)
    with pytest.raises(TableCreationError) as info:
        tenancy_of(app).create_tenant("acme", domains=["acme.test"])
    assert info.value.tenant == "acme" and info.value.cause
    assert "acme" in str(info.value)
    with app.app_context():
        session = broken_db.session
        session.add(BrokenTenant(name="globex"))
        with pytest.raises(TableCreationError, match="globex"):
            session.commit()
        session.rollback()
    assert_state(app, set(), {"acme", "globex"})
    assert domains_of(app) == {}
    assert not ({"fine", "broken"} & tables_in(engine_of(app), "public"))


# -- what every tenant schema holds ----------------------------------------------------------------


def schema_shape(app: Flask, schema: str) -> dict[str, Any]:
    """Constraints (with their definitions, schema-qualified references made relative),
    indexes and sequences of ``schema``."""
    engine = engine_of(app)
    constraints = catalog(
        engine,
        "SELECT c.conrelid::regclass::text, c.contype, c.conname, pg_get_constraintdef(c.oid), "
        "       fn.nspname "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "LEFT JOIN pg_class f ON f.oid = c.confrelid "
        "LEFT JOIN pg_namespace fn ON fn.oid = f.relnamespace "
        "WHERE n.nspname = :s AND c.contype IN ('p', 'f', 'u', 'c')",
        s=schema,
    )
    indexes = catalog(
        engine,
        "SELECT tablename, indexname, replace(indexdef, :prefix, '') FROM pg_indexes "
        "WHERE schemaname = :s",
        s=schema,
        prefix=f"{schema}.",
    )
    sequences = catalog(
        engine,
        "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = :s",
        s=schema,
    )
    types = catalog(
        engine,
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = :s AND t.typtype = 'e'",
        s=schema,
    )

    def relative(value: Any) -> Any:
        return value.replace(f"{schema}.", "") if isinstance(value, str) else value

    return {
        "constraints": sorted(
            (relative(t), k, n, relative(d), "own" if fk == schema else fk)
            for t, k, n, d, fk in constraints
        ),
        "indexes": sorted(indexes),
        "sequences": sorted(sequences),
        "types": sorted(types),
    }


def test_every_tenant_schema_has_all_constraints_and_indexes(db_url: str) -> None:
    app = make_rich_app(db_url)
    tenancy = tenancy_of(app)
    for name in ("acme", "globex"):
        tenancy.create_tenant(name, domains=[f"{name}.test"])
    acme, globex = schema_shape(app, "acme"), schema_shape(app, "globex")
    assert acme == globex
    kinds = {(table, kind) for table, kind, *_ in acme["constraints"]}
    assert {("categories", "p"), ("categories", "u"), ("items", "p"), ("items", "u")} <= kinds
    assert {("items", "f"), ("items", "c")} <= kinds
    fks = {d: target for _, kind, _, d, target in acme["constraints"] if kind == "f"}
    # the FK between tenant tables stays inside the schema; the one to tenants goes to public
    assert fks == {
        "FOREIGN KEY (category_id) REFERENCES categories(id)": "own",
        "FOREIGN KEY (owner_id) REFERENCES tenants(id)": "public",
    }
    index_names = {name for _, name, _ in acme["indexes"]}
    assert {"ix_items_name", "ix_items_lower_name", "uq_items_category_name"} <= index_names
    assert len(acme["sequences"]) == 2 and acme["types"] == [("mood",)]
    assert {"categories", "items"} <= tables_in(engine_of(app), "acme")
    assert not ({"categories", "items"} & tables_in(engine_of(app), "public"))
    assert "tenant" not in schema_names(engine_of(app))

    # both forms of tenant table work at run time, each tenant with its own sequences
    with app.app_context():
        for name in ("acme", "globex"):
            owner = tenancy.get_tenant(name).id
            with with_db(name) as session:
                session.add(Category(name=f"{name}-cat"))
                session.flush()
                cat = session.scalars(select(Category)).one()
                session.add(Item(sku=f"{name}-1", name="x", category_id=cat.id, owner_id=owner))
                session.commit()
                assert cat.id == 1
                item = session.scalars(select(Item)).one()
                assert (item.id, item.mood, item.sku) == (1, Mood.happy, f"{name}-1")
        with with_db("acme") as session:
            with pytest.raises(Exception, match="ck_items_sku"):
                session.add(Item(sku="", name="y", category_id=1))
                session.flush()


# -- a pool of one connection --------------------------------------------------------------------

pool1_bp = Blueprint("pool1", __name__)


@pool1_bp.route("/api-rename/<old>/<new>", methods=["POST"])
def api_rename(old: str, new: str):  # type: ignore[no-untyped-def]
    from flask import current_app

    tenancy_of(current_app).rename_tenant(old, new)
    return jsonify({"ok": True})


@pool1_bp.route("/orm-rename/<old>/<new>", methods=["POST"])
def orm_rename_view(old: str, new: str):  # type: ignore[no-untyped-def]
    Tenant.query.filter_by(name=old).one().name = new
    readme_db.session.commit()
    return jsonify({"ok": True})


@pool1_bp.route("/orm-delete/<name>", methods=["POST"])
def orm_delete_view(name: str):  # type: ignore[no-untyped-def]
    for d in Domain.query.filter_by(tenant_name=name):
        readme_db.session.delete(d)
    readme_db.session.flush()
    readme_db.session.delete(Tenant.query.filter_by(name=name).one())
    readme_db.session.commit()
    return jsonify({"ok": True})


def within(seconds: float, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it takes longer."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds}s: hung or deadlocked"
    if errors:
        raise errors[0]


def test_rename_and_delete_on_a_pool_of_one(db_url: str) -> None:
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
    app = make_app_with(db_url, public_blueprints=[pool1_bp], SQLALCHEMY_ENGINE_OPTIONS=options)

    def scenario() -> None:
        seed_tanks(app, {"acme": 1, "globex": 1, "initech": 1})
        tenancy = tenancy_of(app)
        c = app.test_client()

        def ok(path: str, base: str = PUBLIC_URL, method: str = "POST") -> Any:
            r = c.open(path, method=method, base_url=base)
            assert r.status_code == 200, r.get_data(as_text=True)
            return r.json

        assert ok("/tanks", tenant_url("acme"), "GET")["tanks"] == ["acme-0"]
        tenancy.rename_tenant("acme", "acme2")
        ok("/api-rename/acme2/acme3")
        ok("/orm-rename/acme3/acme4")
        assert ok("/tanks", tenant_url("acme"), "GET") == {"tenant": "acme4", "tanks": ["acme-0"]}
        with app.app_context():  # the ORM in a script
            Tenant.query.filter_by(name="acme4").one().name = "acme5"
            readme_db.session.commit()
            with with_db("globex") as session:
                assert session.scalars(select(Tank.name)).all() == ["globex-0"]
        tenancy.delete_tenant("acme5")
        ok("/orm-delete/globex")
        assert ok("/tanks", tenant_url("initech"), "GET")["tanks"] == ["initech-0"]
        assert_state(app, {"initech"}, {"acme", "acme2", "acme3", "acme4", "acme5", "globex"})

    within(60, scenario)
    assert engine_of(app).pool.checkedout() == 0


# -- deleting never touches anyone else ----------------------------------------------------------


def test_deleting_a_tenant_leaves_everyone_elses_data(app: Flask) -> None:
    tenancy = tenancy_of(app)
    tenancy.create_tenant("initech")
    before = {t: tanks_in(app, t) for t in ("globex", "initech")}
    tenancy.delete_tenant("acme")
    assert {t: tanks_in(app, t) for t in ("globex", "initech")} == before
    assert tenant_rows(app) == ["globex", "initech"]
    assert domains_of(app) == {"globex.example.com": ("globex", False)} or domains_of(app) == {
        "globex.example.com": ("globex", True)
    }
    assert {"tenants", "domains"} <= tables_in(engine_of(app), "public")


def test_a_tenant_with_its_own_views_and_rows_referencing_it_can_be_deleted(db_url: str) -> None:
    app = make_rich_app(db_url)
    tenancy = tenancy_of(app)
    tenancy.create_tenant("acme")
    owner = tenancy.get_tenant("acme").id
    with engine_of(app).begin() as conn:
        conn.execute(text("CREATE VIEW acme.item_names AS SELECT name FROM acme.items"))
        conn.execute(text("INSERT INTO acme.categories (name) VALUES ('c')"))
        conn.execute(
            text(
                "INSERT INTO acme.items (sku, name, mood, category_id, owner_id) "
                "VALUES ('s', 'n', 'happy', 1, :o)"
            ),
            {"o": owner},
        )
    tenancy.delete_tenant("acme")
    assert_state(app, set(), {"acme"})


OUTSIDE_DEPENDENTS = {
    "view": "CREATE VIEW public.acme_tanks AS SELECT name FROM acme.tanks",
    "foreign key": "CREATE TABLE public.refs (tank_id int REFERENCES acme.tanks(id))",
    "other tenant's view": "CREATE VIEW globex.spy AS SELECT name FROM acme.tanks",
}


@pytest.mark.parametrize("dependent", sorted(OUTSIDE_DEPENDENTS))
def test_drop_is_refused_when_another_schema_depends_on_the_tenant(
    fresh_db: str, dependent: str
) -> None:
    app = make_app_with(fresh_db)
    seed_tanks(app, {"acme": 1, "globex": 1})
    with engine_of(app).begin() as conn:
        conn.execute(text(OUTSIDE_DEPENDENTS[dependent]))
    with pytest.raises(SchemaDropError, match="depend") as info:
        tenancy_of(app).delete_tenant("acme")
    assert info.value.tenant == "acme"
    with pytest.raises(SchemaDropError):  # the ORM way too
        orm(app, orm_delete, commit=True)
    assert_state(app, {"acme", "globex"}, set())
    assert tanks_in(app, "acme") == ["acme-0"]
    assert "acme.example.com" in domains_of(app)
    assert tanks_in(app, "globex") == ["globex-0"]


def test_drop_is_refused_when_another_schema_uses_the_tenants_type(fresh_db: str) -> None:
    app = make_rich_app(fresh_db)
    tenancy_of(app).create_tenant("acme")
    with engine_of(app).begin() as conn:
        conn.execute(text("CREATE TABLE public.moods (m acme.mood)"))
    with pytest.raises(SchemaDropError, match="public.moods"):
        tenancy_of(app).delete_tenant("acme")
    assert catalog(
        engine_of(app),
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'moods' AND column_name = 'm'",
    ) == [(1,)]
