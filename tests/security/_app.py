"""The app under attack: its own models (own metadata), a tenant table whose rows carry the
tenant's name, and a trap table of the same name in ``public`` whose rows say 'public', so a
query that falls through to the public schema is caught as a wrong row."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, jsonify, request
from sqlalchemy import Engine, ForeignKey, Integer, String, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_tenants import FlaskTenants
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin, shared_tables
from flask_tenants.schema import Consistency, check_consistency


class SecBase(DeclarativeBase):
    pass


class Tenant(TenantMixin, SecBase):
    __tablename__ = "tenants"
    deactivated: Mapped[bool] = mapped_column(default=False)


class Domain(DomainMixin, SecBase):
    __tablename__ = "domains"
    tenant_name: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.name", onupdate="CASCADE"), nullable=False, index=True
    )


class Item(TenantModelMixin, SecBase):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(String(200), default="")


TENANT_TABLE_NAMES = ["items"]
# hosts of tenant i: even tenants by their sub-domain (fallback), odd ones by a domain row whose
# first label is not a valid tenant name (so only the Domain table can resolve it)
TENANT_NAMES = [f"t{i:02d}" for i in range(64)]


def host_of(name: str) -> str:
    i = int(name[1:])
    return f"{name}.example.com" if i % 2 == 0 else f"shop-{i:02d}.test.com"


def make_engine(url: str, **options: Any) -> Engine:
    options.setdefault("pool_size", 4)
    options.setdefault("max_overflow", 0)
    options.setdefault("pool_timeout", 30)
    return create_engine(url, **options)


def create_shared(engine: Engine, trap: bool = True) -> None:
    """Shared tables, and (``trap``) a public ``items`` table holding one 'public' row."""
    SecBase.metadata.create_all(engine, tables=shared_tables(SecBase.metadata))
    if trap:
        with engine.begin() as c:
            c.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS public.items (id serial PRIMARY KEY, "
                    "tenant varchar(128), payload varchar(200))"
                )
            )
            c.execute(text("INSERT INTO public.items (tenant, payload) VALUES ('public', 'trap')"))


def make_app(
    engine: Engine,
    admin: Engine | None = None,
    extra: Callable[[Flask, FlaskTenants], None] | None = None,
    **config: Any,
) -> tuple[Flask, FlaskTenants]:
    """A Flask app serving ``/items`` on tenant hosts; ``?fault=`` injects a fault in the view."""
    app = Flask(__name__)
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False, **config)
    ext = FlaskTenants(tenant_model=Tenant, domain_model=Domain, engine=engine)
    ext.init_app(app)
    bp = ext.create_tenant_blueprint("t")
    pub = ext.create_public_blueprint("p")

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Any:
        code = getattr(exc, "code", None)
        if isinstance(code, int) and 400 <= code < 600:
            return jsonify(error=type(exc).__name__), code
        gone = bool(getattr(exc, "connection_invalidated", False))
        return jsonify(error=type(exc).__name__, disconnect=gone, detail=str(exc)[:300]), 500

    def _state(session: Any) -> dict[str, Any]:
        schema, path = session.execute(
            text("SELECT current_schema(), current_setting('search_path')")
        ).one()
        tags = list(session.scalars(select(Item.tenant)))
        raw = [r[0] for r in session.execute(text("SELECT tenant FROM items"))]
        return {"schema": schema, "path": path, "tags": tags + raw}

    @bp.route("/items", methods=["GET", "POST"])
    def items() -> Any:
        fault = request.args.get("fault", "")
        s = g.db_session
        first = None
        if fault == "rollback":
            s.execute(insert(Item).values(tenant=g.tenant, payload="rolled back"))
            s.rollback()
        elif fault == "statement_recovered":
            try:
                s.execute(text("SELECT 1/0"))
            except DBAPIError:
                s.rollback()
        elif fault == "statement":
            s.execute(text("SELECT 1/0"))
        elif fault == "write" or request.method == "POST":
            s.add(Item(tenant=g.tenant, payload="w"))
            s.commit()
        elif fault == "two_transactions":
            first = _state(s)
            s.commit()
        out = _state(s)
        if first is not None:
            out["tags"] += first["tags"]
            if first["schema"] != out["schema"]:
                out["schema"] = f"{first['schema']}|{out['schema']}"
        if fault == "raise":
            raise RuntimeError("fault injected in the view")
        if fault == "kill":
            assert admin is not None
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with admin.connect() as a:
                a.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
            s.execute(text("SELECT 1"))  # fails: the server closed this connection
        return jsonify(tenant=g.tenant, **out)

    @pub.route("/")
    def home() -> Any:
        s = g.db_session
        return jsonify(tenant=g.tenant, **_state(s))

    app.register_blueprint(bp)
    app.register_blueprint(pub)
    if extra is not None:
        extra(app, ext)
    return app, ext


def seed(app: Flask, ext: FlaskTenants, names: Iterable[str], rows: int = 3) -> None:
    """Create tenants ``names`` with their domains and ``rows`` tagged rows each."""
    from flask_tenants import with_db

    with app.app_context():
        for name in names:
            host = host_of(name)
            ext.create_tenant(name, domains=[] if host.startswith(name + ".") else [host])
            with with_db(name) as s:
                s.add_all([Item(tenant=name, payload="seed") for _ in range(rows)])
                s.commit()


def consistency(engine: Engine) -> Consistency:
    with engine.connect() as c:
        return check_consistency(c, Tenant.__table__, TENANT_TABLE_NAMES, ("public",))
