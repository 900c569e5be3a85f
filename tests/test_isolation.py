"""Isolation: no request ever sees another tenant's rows, under concurrency, with a pool smaller
than the thread count, with requests failing half-way, on psycopg2 and psycopg 3; and nothing is
left on a pooled connection. The same harness run with the schema switch disabled, or replaced by
a session-level SET, reports the leaks, which shows that it can fail."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Blueprint, Flask, g, jsonify
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection

import flask_tenants.isolation
from flask_tenants import db, tenant_context, with_db
from flask_tenants.context import TenantBinding, current_tenant
from flask_tenants.exceptions import TenantIsolationError, TenantSchemaMissingError
from tests.conftest import full_size
from tests.sample_app import (
    PUBLIC_URL,
    Tank,
    catalog,
    engine_of,
    make_app_with,
    seed_tanks,
    tables_in,
    tenant_url,
)

pytestmark = pytest.mark.usefixtures("dispose_engines")

POOL_SIZE = 3
THREADS = 8
TENANTS = [f"t{i:02d}" for i in range(10)]
SEEDED = 3  # rows per tenant: "<tenant>-0" .. "<tenant>-2"
PUBLIC_DECOYS = ["public-0", "public-1"]


def tank_names(session: Any) -> list[str]:
    return list(session.scalars(select(Tank.name).order_by(Tank.id)).all())


iso_bp = Blueprint("iso", __name__)
iso_public_bp = Blueprint("iso_public", __name__)


@iso_bp.route("/rows")
def rows():  # type: ignore[no-untyped-def]
    return jsonify({"tenant": g.tenant, "rows": tank_names(g.db_session)})


@iso_bp.route("/rows/fsa")
def rows_fsa():  # type: ignore[no-untyped-def]
    # Flask-SQLAlchemy's own db.session and Model.query, not g.db_session
    by_query = [t.name for t in Tank.query.order_by(Tank.id).all()]
    by_session = db.session.execute(text("SELECT name FROM tanks ORDER BY id")).scalars().all()
    return jsonify({"tenant": g.tenant, "rows": by_query, "text_rows": list(by_session)})


@iso_bp.route("/boom")
def boom():  # type: ignore[no-untyped-def]
    tank_names(g.db_session)
    raise RuntimeError("the view fails after a query")


@iso_bp.route("/bad-sql")
def bad_sql():  # type: ignore[no-untyped-def]
    tank_names(g.db_session)
    g.db_session.execute(text("SELECT * FROM no_such_table"))
    return jsonify({})


@iso_bp.route("/recover")
def recover():  # type: ignore[no-untyped-def]
    try:
        g.db_session.execute(text("SELECT 1/0"))
    except Exception:
        g.db_session.rollback()
    return jsonify({"tenant": g.tenant, "rows": tank_names(g.db_session)})


@iso_bp.route("/rollback")
def rollback():  # type: ignore[no-untyped-def]
    tank_names(g.db_session)
    g.db_session.rollback()
    return jsonify({"tenant": g.tenant, "rows": tank_names(g.db_session)})


@iso_bp.route("/multi-commit")
def multi_commit():  # type: ignore[no-untyped-def]
    s = g.db_session
    tmp = Tank(name=f"{g.tenant}-tmp")
    s.add(tmp)
    s.commit()
    during = tank_names(s)
    s.commit()
    s.delete(tmp)
    s.commit()
    after = tank_names(s)
    s.commit()
    return jsonify({"tenant": g.tenant, "rows": during + after})


@iso_bp.route("/nested/<other>")
def nested(other: str):  # type: ignore[no-untyped-def]
    with with_db(other) as session:
        other_rows = tank_names(session)
        assert current_tenant() == other
    assert current_tenant() == g.tenant
    own = tank_names(g.db_session)
    return jsonify({"tenant": g.tenant, "rows": own, "other": other, "other_rows": other_rows})


@iso_bp.route("/probe-042")
def probe_042():  # type: ignore[no-untyped-def]
    seen = {}
    # the request's own session used for the first time inside another tenant's block
    with with_db("t05") as other:
        seen["own_inside"] = tank_names(g.db_session)
        seen["other"] = tank_names(other)
    with with_db(db) as same:  # 0.4.2: with_db(db) is the request's tenant
        seen["with_db_db"] = tank_names(same)
    with with_db() as same:
        seen["with_db"] = tank_names(same)
    seen["own_after"] = tank_names(g.db_session)
    return jsonify(seen)


@iso_public_bp.route("/public-rows")
def public_rows():  # type: ignore[no-untyped-def]
    return jsonify({"tenant": g.tenant, "rows": tank_names(g.db_session)})


def build_app(url: str, **config: Any) -> Flask:
    """The README app with the probe routes, ten seeded tenants and decoy rows in public."""
    options = {"pool_size": POOL_SIZE, "max_overflow": 0, "pool_timeout": 60}
    app = make_app_with(
        url,
        tenant_blueprints=[iso_bp],
        public_blueprints=[iso_public_bp],
        SQLALCHEMY_ENGINE_OPTIONS=options,
        **config,
    )
    seed_tanks(app, dict.fromkeys(TENANTS, SEEDED))
    # A tenant table that also exists in public (a misconfiguration the library must survive):
    # a tenant query that falls through to public would return these decoys.
    with engine_of(app).begin() as conn:
        conn.execute(text("CREATE TABLE public.tanks (LIKE t00.tanks)"))
        conn.execute(
            text("INSERT INTO public.tanks (id, name) VALUES (1, :a), (2, :b)"),
            {"a": PUBLIC_DECOYS[0], "b": PUBLIC_DECOYS[1]},
        )
    return app


def wrong_rows(owner: str, rows: list[str]) -> int:
    """Rows that are not ``owner``'s, plus ``owner``'s seeded rows that are missing."""
    expected = PUBLIC_DECOYS if owner == "public" else [f"{owner}-{i}" for i in range(SEEDED)]
    foreign = sum(1 for r in rows if not r.startswith(owner + "-"))
    return foreign + len(set(expected) - set(rows))


@dataclass
class Report:
    requests: int = 0
    wrong_rows: int = 0
    unexpected_status: list[tuple[str, int]] = field(default_factory=list)
    worker_errors: list[BaseException] = field(default_factory=list)


KINDS = [
    "rows",
    "rows",
    "fsa",
    "boom",
    "bad-sql",
    "recover",
    "rollback",
    "multi-commit",
    "nested",
    "public",
    "public",
]


def one_request(client: Any, rng: random.Random, report: Report, lock: threading.Lock) -> None:
    kind = rng.choice(KINDS)
    tenant = rng.choice(TENANTS)
    base = PUBLIC_URL if kind == "public" else tenant_url(tenant)
    path = {
        "rows": "/rows",
        "fsa": "/rows/fsa",
        "public": "/public-rows",
        "nested": f"/nested/{rng.choice(TENANTS)}",
    }.get(kind, f"/{kind}")
    r = client.get(path, base_url=base)
    wrong = 0
    expected_status = 500 if kind in ("boom", "bad-sql") else 200
    if r.status_code == 200 and r.is_json:
        body = r.json
        owner = "public" if kind == "public" else tenant
        wrong += body["tenant"] != owner
        wrong += wrong_rows(owner, body["rows"])
        if kind == "nested":
            wrong += wrong_rows(body["other"], body["other_rows"])
        if kind == "fsa":
            wrong += wrong_rows(owner, body["text_rows"])
    with lock:
        report.requests += 1
        report.wrong_rows += wrong
        if r.status_code != expected_status:
            report.unexpected_status.append((f"{base}{path}", r.status_code))


def run_harness(app: Flask, requests_per_thread: int, seed: int = 0) -> Report:
    """THREADS threads, one test client each, random probe requests; returns what they saw."""
    report = Report()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        try:
            client = app.test_client()
            rng = random.Random(seed * 1000 + i)
            start.wait(timeout=30)
            for _ in range(requests_per_thread):
                one_request(client, rng, report, lock)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            with lock:
                report.worker_errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "the harness hung"
    return report


def pooled_search_paths(app: Flask) -> list[str]:
    """search_path of every pooled connection, all checked out at once (raw, so no hook runs)."""
    engine = engine_of(app)
    conns = [engine.raw_connection() for _ in range(POOL_SIZE)]
    try:
        paths = []
        for c in conns:
            cur = c.cursor()
            cur.execute("SHOW search_path")
            paths.append(cur.fetchone()[0])
            cur.close()
            c.rollback()
        return paths
    finally:
        for c in conns:
            c.close()


def schema_contents_are_their_own(app: Flask) -> int:
    """Rows left in a tenant's table that do not carry its name (after the writes)."""
    bad = 0
    for t in TENANTS:
        names = [r[0] for r in catalog(engine_of(app), f'SELECT name FROM "{t}".tanks')]  # noqa: S608
        bad += wrong_rows(t, names) + sum(n.endswith("-tmp") for n in names)
    return bad


@pytest.fixture
def quiet_app_logger(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # the 500s of the failing views are logged by Flask at ERROR level: expected here
    caplog.set_level("CRITICAL", logger="tests.sample_app")
    yield


@pytest.mark.usefixtures("quiet_app_logger")
def test_no_request_sees_another_tenants_rows(db_url: str) -> None:
    app = build_app(db_url)
    per_thread = 100 if full_size() else 40  # 8 threads: 320 requests by default
    report = run_harness(app, per_thread)
    assert not report.worker_errors, report.worker_errors
    assert report.requests == THREADS * per_thread
    assert report.unexpected_status == []
    assert report.wrong_rows == 0
    assert schema_contents_are_their_own(app) == 0
    assert engine_of(app).pool.checkedout() == 0
    assert pooled_search_paths(app) == ['"$user", public'] * POOL_SIZE


def session_level_set(conn: Connection, binding: TenantBinding) -> None:
    """What a naive implementation does: a session-level SET for tenants, nothing for public."""
    if binding.schema is not None:
        conn.execute(
            text("SELECT set_config('search_path', :p, false)"), {"p": binding.search_path}
        )


def no_switch(conn: Connection, binding: TenantBinding) -> None:
    """The schema switch disabled."""


@pytest.mark.usefixtures("quiet_app_logger")
@pytest.mark.parametrize("broken", [no_switch, session_level_set], ids=lambda f: f.__name__)
def test_the_harness_reports_leaks_when_the_switch_is_broken(
    fresh_db: str, broken: Callable[[Connection, TenantBinding], None], monkeypatch: Any
) -> None:
    app = build_app(fresh_db)
    monkeypatch.setattr(flask_tenants.isolation, "apply_binding", broken)
    report = run_harness(app, 15, seed=1)
    assert not report.worker_errors, report.worker_errors
    assert report.wrong_rows > 0
    if broken is session_level_set:
        assert any(p != '"$user", public' for p in pooled_search_paths(app))


# -- single-threaded properties -------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(module_db_url: str) -> Iterator[Flask]:
    """One app per driver for the tests below (each uses its own tenants of the ten)."""
    app = build_app(module_db_url)
    yield app
    engine_of(app).dispose()


def test_flask_sqlalchemy_session_and_model_query_use_the_tenant_schema(app: Flask) -> None:
    c = app.test_client()
    for t in ("t01", "t02"):
        rows = [f"{t}-{i}" for i in range(SEEDED)]
        r = c.get("/rows/fsa", base_url=tenant_url(t))
        assert r.json == {"tenant": t, "rows": rows, "text_rows": rows}
    r = c.get("/public-rows", base_url=PUBLIC_URL)
    assert r.json == {"tenant": "public", "rows": PUBLIC_DECOYS}


def test_requests_inside_an_outer_app_context_stay_isolated(app: Flask) -> None:
    # a test suite that pushes an app context and then makes requests: the context (and
    # Flask-SQLAlchemy's session) outlives each request
    c = app.test_client()
    with app.app_context():
        # the outer code has a transaction open (in public) before the first request
        assert tank_names(db.session) == PUBLIC_DECOYS
        for t in ("t01", "t02", "public", "t01"):
            if t == "public":
                r = c.get("/public-rows", base_url=PUBLIC_URL)
                assert r.json["rows"] == PUBLIC_DECOYS
                continue
            rows = [f"{t}-{i}" for i in range(SEEDED)]
            r = c.get("/rows/fsa", base_url=tenant_url(t))
            assert r.json == {"tenant": t, "rows": rows, "text_rows": rows}
            r = c.get("/rows", base_url=tenant_url(t))
            assert r.json["rows"] == rows
        # after a tenant request, the app context's session is not left in the tenant's schema
        assert tank_names(db.session) == PUBLIC_DECOYS


def autocommit_variants(app: Flask, url: str) -> Iterator[tuple[str, Callable[[], Any]]]:
    engine = engine_of(app)

    def option_engine() -> Any:
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            return conn.execute(text("SELECT name FROM tanks")).all()

    def option_connection() -> Any:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            return conn.execute(text("SELECT name FROM tanks")).all()

    def autocommit_engine() -> Any:
        other = create_engine(url, isolation_level="AUTOCOMMIT")
        flask_tenants.isolation.install(other)
        try:
            with other.connect() as conn:
                return conn.execute(text("SELECT name FROM tanks")).all()
        finally:
            other.dispose()

    yield "engine.execution_options", option_engine
    yield "connection.execution_options", option_connection
    yield "create_engine(isolation_level=AUTOCOMMIT)", autocommit_engine


def test_autocommit_is_refused_in_a_tenant_context(app: Flask, module_db_url: str) -> None:
    with app.app_context():
        for label, run in autocommit_variants(app, module_db_url):
            with tenant_context("t01"):
                with pytest.raises(TenantIsolationError, match="AUTOCOMMIT"):
                    run()
            # outside a tenant context AUTOCOMMIT is fine (the public decoys)
            assert sorted(r[0] for r in run()) == PUBLIC_DECOYS, label


def test_an_autocommit_app_engine_refuses_tenant_requests(app: Flask, module_db_url: str) -> None:
    app2 = make_app_with(
        module_db_url,
        tenant_blueprints=[iso_bp],
        SQLALCHEMY_ENGINE_OPTIONS={"isolation_level": "AUTOCOMMIT"},
    )
    app2.testing = True
    c = app2.test_client()
    with pytest.raises(TenantIsolationError):
        c.get("/rows", base_url=tenant_url("t01"))
    assert app.test_client().get("/rows", base_url=tenant_url("t01")).status_code == 200


def test_a_dropped_schema_is_503_never_public_rows(app: Flask) -> None:
    c = app.test_client()
    assert c.get("/rows", base_url=tenant_url("t09")).status_code == 200  # resolved and cached
    with engine_of(app).begin() as conn:
        conn.execute(text("DROP SCHEMA t09 CASCADE"))  # behind the library's back
    for path in ("/rows", "/rows/fsa", "/multi-commit"):
        r = c.get(path, base_url=tenant_url("t09"))
        assert r.status_code == 503, path
        assert "public-" not in r.get_data(as_text=True)
    with app.app_context():
        with pytest.raises(TenantSchemaMissingError), with_db("t09") as session:
            tank_names(session)
    # the other tenants are unaffected
    assert c.get("/rows", base_url=tenant_url("t04")).json["rows"][0] == "t04-0"


def test_with_db_nesting_restores_the_outer_tenant(app: Flask) -> None:
    with app.app_context():
        with with_db("t01") as outer:
            assert current_tenant() == "t01"
            assert tank_names(outer)[0] == "t01-0"
            with with_db("t02") as inner:
                assert current_tenant() == "t02"
                assert tank_names(inner)[0] == "t02-0"
                # the outer session keeps its tenant, even for a new transaction begun here
                outer.commit()
                assert tank_names(outer)[0] == "t01-0"
            assert current_tenant() == "t01"
            assert tank_names(db.session)[0] == "t01-0"
            db.session.rollback()
        assert current_tenant() is None
        with with_db() as public:  # no request, no tenant: public
            assert tank_names(public) == PUBLIC_DECOYS


def test_engines_derived_from_the_app_engine_switch_too_without_engine_listeners(
    app: Flask,
) -> None:
    engine = engine_of(app)
    # the hook is no engine event listener: one would make every execute dispatch events
    assert not engine.dispatch.begin and not engine.dispatch.commit
    derived = {
        "engine": engine,
        "execution_options": engine.execution_options(app_marker="a"),
        "options of options": engine.execution_options(app_marker="a").execution_options(
            app_marker="b"
        ),
    }
    want = [f"t03-{i}" for i in range(SEEDED)]
    for label, eng in derived.items():
        with tenant_context("t03"), eng.connect() as conn:
            assert isinstance(conn, flask_tenants.isolation.TenantConnection), label
            assert conn.execute(text("SELECT name FROM tanks ORDER BY id")).scalars().all() == want
            conn.commit()  # a second transaction on the same Connection switches again
            assert conn.execute(text("SELECT name FROM tanks ORDER BY id")).scalars().all() == want
        with eng.connect() as conn:
            got = conn.execute(text("SELECT name FROM tanks ORDER BY id")).scalars().all()
            assert got == PUBLIC_DECOYS, label


def test_with_db_in_a_request_the_0_4_2_way_and_nested(app: Flask) -> None:
    r = app.test_client().get("/probe-042", base_url=tenant_url("t06"))
    t06 = [f"t06-{i}" for i in range(SEEDED)]
    assert r.json == {
        "own_inside": t06,
        "other": [f"t05-{i}" for i in range(SEEDED)],
        "with_db_db": t06,
        "with_db": t06,
        "own_after": t06,
    }


def test_create_all_never_puts_tenant_tables_in_public(fresh_db: str) -> None:
    from tests.sample_app import make_app

    app = make_app(fresh_db)  # calls db.create_all()
    with app.app_context():
        db.create_all()
        db.create_all(bind_key=None)
    engine = engine_of(app)
    assert "tanks" not in tables_in(engine, "public")
    assert {"tenants", "domains"} <= tables_in(engine, "public")
    assert catalog(engine, "SELECT to_regnamespace('tenant') IS NULL") == [(True,)]
    with app.app_context():
        db.drop_all()
    assert not ({"tenants", "domains", "tanks"} & tables_in(engine, "public"))
