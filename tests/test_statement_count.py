"""What tenancy costs on the wire, and the driver fast paths that keep it there.

The counts come from a proxy between the app and PostgreSQL (``benchmarks/wire_count.py``) that
parses what the client sends: nothing the library does can hide a statement from it.

* A request on a cached tenant sends exactly the plain app's statements plus one per
  transaction (the search_path), in no more round trips than the plain app.
* The fast paths (psycopg 3: ``BEGIN`` and the search_path in one simple query; psycopg2: the
  search_path in front of the transaction's first statement) keep every guarantee of the plain
  hook: raw driver cursors, server-side cursors, ``executemany``, ``COPY`` and savepoints run
  in the tenant's schema, a missing schema never falls through to ``public``, nothing survives
  the transaction on a pooled connection.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine, Integer, String, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, Session, mapped_column

from benchmarks.wire_count import WireCounter, WireStats, split_statements
from flask_tenants import tenant_context
from flask_tenants.exceptions import TenantIsolationError, TenantSchemaMissingError
from flask_tenants.isolation import install
from tests.sample_app import engine_of, make_app, seed_tanks, tenant_url

SHARED = ("public",)


def proxied(url: str, counter: WireCounter) -> str:
    return make_url(url).set(port=counter.port).render_as_string(hide_password=False)


@pytest.fixture
def wire(db_url: str) -> Iterator[WireCounter]:
    u = make_url(db_url)
    with WireCounter(u.host or "127.0.0.1", u.port or 5432) as counter:
        yield counter


# -- the request: plain vs tenancy --------------------------------------------------------------

plain_db = SQLAlchemy()


class PlainTank(plain_db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "plain_tanks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


def make_plain_app(url: str) -> Flask:
    app = Flask("plain")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    plain_db.init_app(app)

    @app.route("/tanks")
    def list_tanks() -> Any:
        tanks = plain_db.session.query(PlainTank).order_by(PlainTank.id).all()
        return jsonify({"tenant": None, "tanks": [t.name for t in tanks]})

    with app.app_context():
        plain_db.create_all()
        plain_db.session.add_all(PlainTank(name=f"p-{i}") for i in range(3))
        plain_db.session.commit()
    return app


def count_requests(app: Flask, counter: WireCounter, hosts: list[str], n: int) -> WireStats:
    client = app.test_client()
    for h in hosts:  # every tenant resolved once: the counted requests hit the cache
        assert client.get("/tanks", base_url=h).status_code == 200
    counter.reset()
    for i in range(n):
        r = client.get("/tanks", base_url=hosts[i % len(hosts)])
        assert r.status_code == 200, r.data
    return counter.reset()


def test_a_cached_tenant_costs_one_statement_per_transaction_and_no_round_trip(
    db_url: str, wire: WireCounter
) -> None:
    tenants = {f"t{i}": 3 for i in range(4)}
    seed_app = make_app(db_url)
    seed_tanks(seed_app, tenants)
    engine_of(seed_app).dispose()

    plain = make_plain_app(proxied(db_url, wire))
    app = make_app(proxied(db_url, wire))
    n = 24
    try:
        p = count_requests(plain, wire, ["http://www.example.com"], n)
        t = count_requests(app, wire, [tenant_url(name) for name in tenants], n)
    finally:
        with plain.app_context():
            plain_db.engine.dispose()
        engine_of(app).dispose()

    transactions = t.matching("begin")
    assert p.matching("begin") == transactions == n  # one transaction per request, in both
    assert p.statements == 3 * n  # BEGIN, SELECT, ROLLBACK
    assert t.statements == p.statements + transactions, (p.by_sql, t.by_sql)
    assert t.matching("set_config('search_path'") == transactions
    assert t.matching("tenants") == 0  # no tenant lookup on a cached host
    # the search_path travels with a statement the transaction sends anyway
    assert t.round_trips == p.round_trips == 3 * n


# -- the fast paths keep the hook's guarantees ---------------------------------------------------


@pytest.fixture
def engine(db_url: str, wire: WireCounter) -> Iterator[Engine]:
    """An engine with the hook, through the counting proxy; schemas ``acme`` and ``globex``
    with an ``items`` table naming its schema, and a ``public.items`` decoy."""
    eng = create_engine(proxied(db_url, wire), pool_size=1, max_overflow=0)
    with eng.begin() as conn:
        for schema in ("public", "acme", "globex"):
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.execute(text(f'CREATE TABLE "{schema}".items (v text)'))
            conn.execute(text(f'INSERT INTO "{schema}".items VALUES (:v)'), {"v": schema})  # noqa: S608
    install(eng)
    eng.dispose()  # new connections, made after install()
    yield eng
    eng.dispose()


def items(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute(text("SELECT v FROM items")).all()]


def raw_cursor(conn: Any, driver: str) -> Any:
    dbapi = conn.connection.dbapi_connection
    if driver == "psycopg2":
        import psycopg2.extras

        return dbapi.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    return dbapi.cursor()


def test_raw_driver_cursors_run_in_the_tenant_schema(engine: Engine, driver: str) -> None:
    with tenant_context("acme", SHARED), engine.connect() as conn:
        conn.begin()
        cur = raw_cursor(conn, driver)  # before any statement went through SQLAlchemy
        cur.execute("SELECT v FROM items")
        row = cur.fetchone()
        assert (row["v"] if isinstance(row, dict) else row[0]) == "acme"
        cur.close()
        conn.rollback()


def test_a_cursor_kept_from_an_earlier_transaction_runs_in_the_new_tenant(
    engine: Engine, driver: str
) -> None:
    with engine.connect() as conn:
        with tenant_context("acme", SHARED):
            conn.begin()
            cur = raw_cursor(conn, driver)
            conn.rollback()
        with tenant_context("globex", SHARED):
            conn.begin()
            cur.execute("SELECT v FROM items")
            row = cur.fetchone()
            assert (row["v"] if isinstance(row, dict) else row[0]) == "globex"
            conn.rollback()


def test_server_side_cursor_executemany_copy_and_savepoints(engine: Engine, driver: str) -> None:
    with tenant_context("acme", SHARED):
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(
                text("SELECT v FROM items")
            )
            assert [r[0] for r in result] == ["acme"]
            conn.rollback()
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO items VALUES (:v)"), [{"v": "a1"}, {"v": "a2"}])
            assert sorted(items(conn)) == ["a1", "a2", "acme"]
            conn.rollback()
        with engine.connect() as conn:
            conn.begin()
            sp = conn.begin_nested()  # the savepoint is the first statement
            assert items(conn) == ["acme"]
            sp.rollback()  # the search_path was set before the savepoint: it survives
            assert items(conn) == ["acme"]
            conn.rollback()
        if driver == "psycopg2":
            with engine.connect() as conn:
                conn.begin()
                cur = conn.connection.dbapi_connection.cursor()
                out = io.StringIO()
                cur.copy_expert("COPY items TO STDOUT", out)
                assert out.getvalue() == "acme\n"
                conn.rollback()
    with engine.connect() as conn:  # nothing was written anywhere
        assert items(conn) == ["public"]


def test_a_missing_schema_fails_closed(engine: Engine, wire: WireCounter) -> None:
    with tenant_context("gone", SHARED), engine.connect() as conn:
        wire.reset()
        with pytest.raises(TenantSchemaMissingError):
            conn.execute(text("SELECT v FROM items"))
        assert wire.stats.matching("FROM items") <= 1  # sent with the check, never run alone
        conn.rollback()
    with tenant_context("gone", SHARED), Session(engine) as session:
        with pytest.raises(TenantSchemaMissingError):
            session.execute(text("SELECT v FROM items"))
    with tenant_context("acme", SHARED), engine.connect() as conn:
        assert items(conn) == ["acme"]  # the connection serves the next transaction


def test_nothing_survives_the_transaction(engine: Engine) -> None:
    with engine.connect() as conn:
        with tenant_context("acme", SHARED):
            conn.begin()
            assert items(conn) == ["acme"]
            conn.commit()
            conn.begin()
            conn.commit()  # a transaction that sent nothing
            conn.begin()
            conn.rollback()  # the same, rolled back
        # outside any tenant: the default search_path, on the same pooled connection
        assert items(conn) == ["public"]
        assert conn.execute(text("SHOW search_path")).scalar() == '"$user", public'
        conn.rollback()


def test_empty_transactions_and_isolation_levels(engine: Engine, wire: WireCounter) -> None:
    with tenant_context("acme", SHARED):
        with engine.connect() as conn:
            wire.reset()
            conn.begin()
            conn.commit()
            empty = wire.reset()
            # psycopg2: nothing at all; psycopg 3: BEGIN with the search_path, then COMMIT
            assert empty.statements <= 3 and empty.round_trips <= 2, empty.by_sql
        serializable = engine.execution_options(isolation_level="SERIALIZABLE")
        with serializable.connect() as conn:
            level = conn.execute(text("SHOW transaction_isolation")).scalar()
            assert (level, items(conn)) == ("serializable", ["acme"])
            conn.rollback()
        with engine.connect().execution_options(postgresql_readonly=True) as conn:
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
            assert items(conn) == ["acme"]
            conn.rollback()


def test_autocommit_is_still_refused(engine: Engine) -> None:
    with tenant_context("acme", SHARED):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(TenantIsolationError):
                conn.execute(text("SELECT v FROM items"))


def test_a_connection_factory_of_your_own_gets_the_plain_hook(fresh_db: str) -> None:
    """psycopg2 connections made with a ``connection_factory`` of the user's keep the plain hook."""
    import psycopg2.extensions

    class Mine(psycopg2.extensions.connection):  # type: ignore[misc]
        pass

    url = make_url(fresh_db).set(drivername="postgresql+psycopg2")
    with WireCounter(url.host or "127.0.0.1", url.port or 5432) as counter:
        eng = create_engine(url.set(port=counter.port), connect_args={"connection_factory": Mine})
        try:
            with eng.begin() as conn:
                conn.execute(text("CREATE SCHEMA acme"))
                conn.execute(text("CREATE TABLE acme.items (v text)"))
                conn.execute(text("INSERT INTO acme.items VALUES ('acme')"))
            install(eng)
            with tenant_context("acme", SHARED), eng.connect() as conn:
                assert type(conn.connection.dbapi_connection) is Mine
                counter.reset()
                assert items(conn) == ["acme"]
                stats = counter.reset()
            # BEGIN, the hook's statement on its own, the query
            assert stats.round_trips == stats.statements == 3, stats.by_sql
        finally:
            eng.dispose()


def test_statement_listeners_keep_seeing_the_hooks_statement(
    engine: Engine, wire: WireCounter
) -> None:
    """Loggers, tracers and auditors listening to SQLAlchemy's statements see the hook's
    statement as before (the fast path steps aside), unless ``tenants_fast_path=True``."""
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with engine.connect() as conn, tenant_context("acme", SHARED):
        assert items(conn) == ["acme"]
        conn.rollback()
    event.listen(engine, "before_cursor_execute", listener)
    try:
        wire.reset()
        with engine.connect() as conn, tenant_context("acme", SHARED):
            assert items(conn) == ["acme"]
            conn.rollback()
        assert "set_config('search_path'" in seen[0] and len(seen) == 2, seen
        assert wire.reset().round_trips == 4  # BEGIN, the hook, the query, ROLLBACK
        seen.clear()
        forced = engine.execution_options(tenants_fast_path=True)
        with forced.connect() as conn, tenant_context("acme", SHARED):
            assert items(conn) == ["acme"]
            conn.rollback()
        assert seen == ["SELECT v FROM items"]
        assert wire.reset().round_trips == 3
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_split_statements() -> None:
    assert split_statements("SELECT ';'; SELECT 2 -- x;y\n;") == ["SELECT ';'", "SELECT 2"]


def test_the_counter_sees_what_it_should(engine: Engine, wire: WireCounter) -> None:
    """The proxy is not fooled: a lookup on every request would show up."""
    with engine.connect() as conn:
        wire.reset()
        conn.execute(text("SELECT 1"))
        conn.execute(text("SELECT :x"), {"x": 2})
        conn.rollback()
    stats = wire.reset()
    assert stats.statements == 4  # BEGIN, 2 SELECTs, ROLLBACK
    assert stats.matching("select") == 2
    with engine.connect() as conn, tenant_context("acme", SHARED):
        conn.execute(select(text("1")))
        conn.rollback()
    assert wire.reset().matching("set_config") == 1


def test_a_listener_on_one_connection_also_keeps_the_hooks_statement(
    engine: Engine, wire: WireCounter
) -> None:
    """A statement listener on a single Connection (not the engine) is seen as well: that
    connection's hook statement goes out on its own, the others keep the fast path."""
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with engine.connect() as conn, tenant_context("acme", SHARED):
        event.listen(conn, "before_cursor_execute", listener)
        wire.reset()
        assert items(conn) == ["acme"]
        conn.rollback()
        assert "set_config('search_path'" in seen[0] and len(seen) == 2, seen
        assert wire.reset().round_trips == 4  # BEGIN, the hook, the query, ROLLBACK
    with engine.connect() as conn, tenant_context("acme", SHARED):
        wire.reset()
        assert items(conn) == ["acme"]
        conn.rollback()
        assert wire.reset().round_trips == 3
    assert len(seen) == 2


def test_fast_and_plain_hook_paths_mixed_on_shared_connections_under_threads(
    engine: Engine, db_url: str
) -> None:
    """Threads share a small pool; each transaction takes the fast path or, with a statement
    listener on its Connection or ``tenants_fast_path=False``, the plain hook, on whichever
    pooled driver connection it gets. Every read must name the tenant it ran for."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor

    eng = create_engine(db_url, pool_size=4, max_overflow=0)
    install(eng)
    wrong: list[tuple[str, str, list[str]]] = []
    paths: dict[str, int] = {"fast": 0, "listener": 0, "option": 0}
    lock = threading.Lock()

    def listener(*args: Any) -> None:
        pass

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(60):
            tenant = rng.choice(("acme", "globex"))
            path = rng.choice(tuple(paths))
            target = eng.execution_options(tenants_fast_path=False) if path == "option" else eng
            with target.connect() as conn, tenant_context(tenant, SHARED):
                if path == "listener":
                    event.listen(conn, "before_cursor_execute", listener)
                for _ in range(rng.randint(1, 2)):  # one or two transactions per checkout
                    got = items(conn)
                    if got != [tenant]:
                        with lock:
                            wrong.append((tenant, path, got))
                    conn.commit() if rng.random() < 0.5 else conn.rollback()
            with lock:
                paths[path] += 1

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
    finally:
        eng.dispose()
    assert not wrong, wrong[:5]
    assert all(n > 50 for n in paths.values()), paths
