"""Isolation through a real PgBouncer in transaction pooling mode (sync door).

PgBouncer hands each *transaction* to whichever server connection is free, so anything set at
session level (``SET search_path``) stays behind on a server connection that the next client's
transaction then uses. The control below does exactly that and must see other tenants' rows;
the library sets the path inside each transaction and must see none.

Settings a user needs behind PgBouncer (transaction mode): psycopg 3 ``prepare_threshold=None``
(PgBouncer < 1.21 cannot route named prepared statements), psycopg2 nothing; asyncpg
``statement_cache_size=0`` (see tests/security/test_stress_async.py).
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, text

from ._app import TENANT_NAMES, create_shared, host_of, make_app, make_engine, seed
from ._stress import Stats, check, full_size, pick_fault, written_rows_check
from .conftest import Bouncer, with_driver

TENANTS = 20
THREADS = 16
REQUESTS = 5000 if full_size() else 800  # per driver
CONTROL_QUERIES = 2000 if full_size() else 400
#: faults that do not kill connections (PgBouncer's own server connections are not ours to kill)
KINDS = ("raise", "statement", "statement_recovered", "rollback", "write", "two_transactions")

DRIVER_ARGS = {"psycopg": {"prepare_threshold": None}, "psycopg2": {}}


def bouncer_engine(bouncer: Bouncer, fresh_db: str, driver: str, **kw: object) -> Engine:
    database = fresh_db.rsplit("/", 1)[1]
    return make_engine(
        bouncer.url_for(database, driver),
        pool_size=8,
        max_overflow=0,
        connect_args=DRIVER_ARGS[driver],
        **kw,  # type: ignore[arg-type]
    )


def _setup(fresh_db: str, admin: Engine) -> list[str]:
    direct = make_engine(with_driver(fresh_db, "psycopg"))
    try:
        create_shared(direct)
        app, ext = make_app(direct, admin)
        tenants = TENANT_NAMES[:TENANTS]
        seed(app, ext, tenants)
        return tenants
    finally:
        direct.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_pgbouncer_transaction_mode_isolation(
    pgbouncer: Bouncer, fresh_db: str, admin: Engine, driver: str
) -> None:
    tenants = _setup(fresh_db, admin)
    engine = bouncer_engine(pgbouncer, fresh_db, driver)
    try:
        app, _ = make_app(engine, admin)
        stats = Stats(f"pgbouncer sync {driver}")
        counter = iter(range(REQUESTS))
        lock = threading.Lock()

        def worker(i: int) -> None:
            rng = random.Random(100 + i)
            client = app.test_client()
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                tenant = rng.choice(tenants)
                fault = pick_fault(rng, 0.15, KINDS)
                r = client.get(f"/items?fault={fault}", base_url="http://" + host_of(tenant))
                check(stats, tenant, fault, r.status_code, r.get_json(silent=True))

        with ThreadPoolExecutor(THREADS) as pool:
            for f in [pool.submit(worker, i) for i in range(THREADS)]:
                f.result()
        stats.assert_clean(REQUESTS)
        assert written_rows_check(admin, tenants) == 0
    finally:
        engine.dispose()


def session_set_control(engine: Engine, tenants: list[str], queries: int) -> tuple[int, int]:
    """The pattern of the original (and of per-cursor SET): session-level ``SET search_path``,
    then the queries in the following transaction(s). Returns (rows read, wrong rows)."""
    rows = wrong = 0
    lock = threading.Lock()
    counter = iter(range(queries))

    def worker(i: int) -> None:
        nonlocal rows, wrong
        rng = random.Random(200 + i)
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            tenant = rng.choice(tenants)
            with engine.connect() as conn:
                # a name from our own list; the control reproduces the original's SQL
                conn.exec_driver_sql(f'SET search_path TO "{tenant}", public')
                conn.commit()
                tags = list(conn.execute(text("SELECT tenant FROM items")).scalars())
                conn.commit()
            with lock:
                rows += len(tags)
                wrong += sum(1 for t in tags if t != tenant)

    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(worker, i) for i in range(THREADS)]:
            f.result()
    return rows, wrong


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_pgbouncer_session_set_search_path_leaks(
    pgbouncer: Bouncer, fresh_db: str, admin: Engine, driver: str
) -> None:
    """The control: the harness does see leaks when the path is set per session."""
    tenants = _setup(fresh_db, admin)
    engine = bouncer_engine(pgbouncer, fresh_db, driver)
    try:
        rows, wrong = session_set_control(engine, tenants, CONTROL_QUERIES)
        print(f"[pgbouncer control {driver}] session SET search_path: {wrong} of {rows} rows wrong")
        assert rows > 0
        assert wrong > 0, "session-level SET search_path did not leak: is PgBouncer pooling?"
    finally:
        engine.dispose()


@pytest.mark.parametrize("threshold", ["default", None])
def test_pgbouncer_psycopg_prepare_threshold(
    pgbouncer: Bouncer, fresh_db: str, admin: Engine, threshold: str | None
) -> None:
    """Why the docs ask for ``prepare_threshold=None`` with psycopg 3: by default it prepares a
    statement run 5 times on a connection (without a ROLLBACK in between), and behind
    PgBouncer < 1.21 in transaction mode the next transaction may run on a server connection
    that never saw it. Several transactions per connection, each committed, in a tenant
    context: with the setting nothing fails; never is a wrong row returned."""
    from flask_tenants import tenant_context
    from flask_tenants.isolation import install

    tenants = _setup(fresh_db, admin)
    database = fresh_db.rsplit("/", 1)[1]
    args = {} if threshold == "default" else {"prepare_threshold": None}
    engine = create_engine(
        pgbouncer.url_for(database, "psycopg"), pool_size=8, max_overflow=0, connect_args=args
    )
    install(engine)
    errors: list[str] = []
    rows = wrong = 0
    lock = threading.Lock()

    def worker(i: int) -> None:
        nonlocal rows, wrong
        with engine.connect() as conn:
            for j in range(20):
                tenant = tenants[(i + j) % len(tenants)]
                try:
                    with tenant_context(tenant, ("public",)):
                        tags = list(conn.execute(text("SELECT tenant FROM items")).scalars())
                        conn.commit()
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    conn.rollback()
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    continue
                with lock:
                    rows += len(tags)
                    wrong += sum(1 for t in tags if t != tenant)

    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(worker, i) for i in range(THREADS)]:
            f.result()
    engine.dispose()
    print(
        f"[pgbouncer psycopg prepare_threshold={threshold}] rows={rows} wrong_rows={wrong}"
        f" failed_transactions={len(errors)} {sorted(set(errors))[:2]}"
    )
    assert wrong == 0
    if threshold is None:
        assert not errors, errors[:5]
    elif _pgbouncer_version() < (1, 21):
        assert errors, "expected prepared-statement errors without prepare_threshold=None"


def _pgbouncer_version() -> tuple[int, ...]:
    import re
    import subprocess

    from .conftest import _pgbouncer_binary

    out = subprocess.run(
        [_pgbouncer_binary() or "pgbouncer", "--version"], capture_output=True, text=True
    ).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# -- the async door (asyncpg) ------------------------------------------------------------------

AIO_REQUESTS = 3000 if full_size() else 600
AIO_TASKS = 24


async def _aio_storm(engine, admin: Engine, tenants: list[str], total: int, stats: Stats) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from ._aio_app import make_aio_app

    app, _ = make_aio_app(engine)
    client = app.test_client()
    remaining = [total]

    async def worker(i: int) -> None:
        rng = random.Random(300 + i)
        while remaining[0] > 0:
            remaining[0] -= 1
            tenant = rng.choice(tenants)
            fault = pick_fault(rng, 0.15, KINDS)
            r = await client.get(f"/items?fault={fault}", headers={"Host": host_of(tenant)})
            check(stats, tenant, fault, r.status_code, await r.get_json())

    await asyncio.gather(*(worker(i) for i in range(AIO_TASKS)))


async def test_pgbouncer_transaction_mode_isolation_async(
    pgbouncer: Bouncer, fresh_db: str, admin: Engine
) -> None:
    """The async door through PgBouncer: asyncpg with its statement caches off and unique
    statement names (``flask_tenants.aio.pgbouncer_connect_args()``)."""
    import logging

    from sqlalchemy.ext.asyncio import create_async_engine

    from flask_tenants.aio import pgbouncer_connect_args

    tenants = _setup(fresh_db, admin)
    database = fresh_db.rsplit("/", 1)[1]
    engine = create_async_engine(
        pgbouncer.url_for(database, "asyncpg"),
        pool_size=8,
        max_overflow=0,
        connect_args=pgbouncer_connect_args(),
    )
    quiet = [logging.getLogger(n) for n in ("flask_tenants", "quart.app")]
    for lg in quiet:
        lg.disabled = True
    try:
        stats = Stats("pgbouncer async asyncpg")
        await _aio_storm(engine, admin, tenants, AIO_REQUESTS, stats)
        stats.assert_clean(AIO_REQUESTS)
        assert written_rows_check(admin, tenants) == 0
    finally:
        for lg in quiet:
            lg.disabled = False
        await engine.dispose()


async def test_pgbouncer_asyncpg_url_setting(pgbouncer: Bouncer, fresh_db: str, admin: Engine):
    """The documented one-line setting: ``?prepared_statement_cache_size=0`` on the URL given
    to the Quart door turns on everything asyncpg needs behind PgBouncer."""
    import asyncio
    import logging

    from quart import Quart

    from flask_tenants.aio import QuartTenants

    from ._app import Domain, SecBase, Tenant

    tenants = _setup(fresh_db, admin)
    database = fresh_db.rsplit("/", 1)[1]
    url = pgbouncer.url_for(database, "asyncpg") + "?prepared_statement_cache_size=0"
    app = Quart(__name__)
    app.config.update(
        TENANTS_DATABASE_URL=url,
        TENANTS_ENGINE_OPTIONS={"pool_size": 8, "max_overflow": 0},
    )
    tenancy = QuartTenants(app, tenant_model=Tenant, domain_model=Domain, db=SecBase).init()
    bp = tenancy.create_tenant_blueprint("t")

    @bp.route("/items")
    async def items():  # type: ignore[no-untyped-def]
        from quart import g, jsonify

        from ._aio_app import _state

        return jsonify(tenant=g.tenant, **(await _state(g.db_session)))

    app.register_blueprint(bp)
    logging.getLogger("quart.app").disabled = True
    try:
        stats = Stats("pgbouncer async asyncpg via URL setting")
        client = app.test_client()

        async def worker(i: int) -> None:
            for j in range(25):
                tenant = tenants[(i * 7 + j) % len(tenants)]
                r = await client.get("/items", headers={"Host": host_of(tenant)})
                check(stats, tenant, "", r.status_code, await r.get_json())

        await asyncio.gather(*(worker(i) for i in range(AIO_TASKS)))
        stats.assert_clean(AIO_TASKS * 25)
        assert stats.ok == stats.requests
    finally:
        logging.getLogger("quart.app").disabled = False
        await tenancy.dispose()
