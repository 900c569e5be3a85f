"""Stress of the sync door: threads sharing one Flask app (test client per thread), pools smaller
than the concurrency, faults injected at random. Every answer is checked against the tenant that
asked for it. ``TENANTS_FULL=1`` runs the full size (>= 10,000 requests over both drivers)."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from ._app import TENANT_NAMES, consistency, create_shared, host_of, make_app, make_engine, seed
from ._stress import (
    FAILING,
    SURVIVED,
    Stats,
    check,
    full_size,
    kill_idle,
    pick_fault,
    recovered,
    written_rows_check,
)
from .conftest import with_driver

TENANTS = 24
THREADS = 16
REQUESTS = 6000 if full_size() else 1500  # per driver
FAULT_RATE = 0.12


def run_threads(
    app, admin: Engine, stats: Stats, tenants: list[str], total: int, threads: int, seed_: int
) -> None:
    """Send ``total`` requests from ``threads`` threads; faults at random; check every answer."""
    counter = iter(range(total))
    counter_lock = threading.Lock()
    kinds = FAILING + SURVIVED

    def worker(i: int) -> None:
        rng = random.Random(seed_ * 1000 + i)
        client = app.test_client()
        while True:
            with counter_lock:
                if next(counter, None) is None:
                    return
            tenant = rng.choice(tenants)
            fault = pick_fault(rng, FAULT_RATE, kinds)
            base = "http://" + host_of(tenant)
            if fault == "kill_idle":
                killed = kill_idle(admin, "ft_stress", rng)
                with stats.lock:
                    stats.kills += killed
            method = client.post if fault == "write" and rng.random() < 0.5 else client.get
            r = method(f"/items?fault={fault}", base_url=base)
            ok = check(stats, tenant, fault, r.status_code, r.get_json(silent=True))
            if not ok:
                # the app keeps serving: the next request of this thread must work
                r = client.get("/items", base_url=base)
                body = r.get_json(silent=True)
                recovered(stats, check(stats, tenant, "", r.status_code, body), body)

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker, i) for i in range(threads)]:
            f.result()


@pytest.mark.parametrize(
    "driver,pre_ping",
    [("psycopg", True), ("psycopg2", False)],
    ids=["psycopg-pre_ping", "psycopg2-no_pre_ping"],
)
def test_stress_threads_with_faults(fresh_db: str, admin: Engine, driver: str, pre_ping: bool):
    """>= 20 tenants, 16 threads on 4+2 pooled connections, faults of every kind: no wrong row,
    no request in the wrong schema, and the app serves on after every fault. Without
    pool_pre_ping, a connection killed while idle in the pool fails the one request that picks
    it up (its first statement is the tenant hook's), and the pool then recovers."""
    engine = make_engine(
        with_driver(fresh_db, driver),
        pool_size=4,
        max_overflow=2,
        pool_pre_ping=pre_ping,
        connect_args={"application_name": "ft_stress"},
    )
    try:
        create_shared(engine)
        app, ext = make_app(engine, admin)
        tenants = TENANT_NAMES[:TENANTS]
        seed(app, ext, tenants)
        stats = Stats(f"sync {driver} pre_ping={pre_ping}")
        t0 = time.perf_counter()
        run_threads(app, admin, stats, tenants, REQUESTS, THREADS, seed_=7)
        elapsed = time.perf_counter() - t0
        stats.label += f" ({elapsed:.1f}s)"
        stats.assert_clean(REQUESTS)
        assert len(stats.faults) == len(FAILING + SURVIVED), stats.faults
        assert written_rows_check(admin, tenants) == 0
        client = app.test_client()  # and the app still serves every tenant
        for t in tenants:
            r = client.get("/items", base_url="http://" + host_of(t))
            assert check(stats, t, "", r.status_code, r.get_json(silent=True)), r.data
        cons = consistency(admin)
        assert not cons.tenants_without_schema and not cons.orphan_schemas, cons
        assert engine.pool.checkedout() == 0  # nothing leaked by the faults
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize("failure", ["schema_missing", "killed", "autocommit"])
def test_failed_hook_does_not_disable_the_hook_on_that_connection(
    fresh_db: str, admin: Engine, driver: str, failure: str
) -> None:
    """When the transaction hook fails (missing schema, connection killed server-side, an
    AUTOCOMMIT connection refused), the same Connection's next transaction must run the hook
    again. SQLAlchemy leaves a Connection whose "begin" listener raised unable to begin again
    (found through PgBouncer: afterwards every transaction read the public trap table)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from flask_tenants import tenant_context
    from flask_tenants.exceptions import TenantIsolationError, TenantSchemaMissingError

    engine = make_engine(with_driver(fresh_db, driver))
    try:
        create_shared(engine)
        app, ext = make_app(engine, admin)
        seed(app, ext, ["t00", "t01"])
        with engine.connect() as conn:
            with tenant_context("t00", ("public",)):
                assert conn.execute(text("SELECT tenant FROM items")).scalars().all()[0] == "t00"
            conn.commit()
            if failure == "schema_missing":
                with tenant_context("gone", ("public",)), pytest.raises(TenantSchemaMissingError):
                    conn.execute(text("SELECT tenant FROM items"))
            elif failure == "killed":
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                conn.commit()
                with admin.connect() as a:
                    a.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
                with tenant_context("t01", ("public",)), pytest.raises(DBAPIError):
                    conn.execute(text("SELECT tenant FROM items"))
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                with tenant_context("t01", ("public",)), pytest.raises(TenantIsolationError):
                    conn.execute(text("SELECT tenant FROM items"))
                conn.execution_options(isolation_level="READ COMMITTED")
            conn.rollback()
            for name in ("t01", "t00"):
                with tenant_context(name, ("public",)):
                    rows = conn.execute(
                        text("SELECT tenant, current_setting('search_path') FROM items")
                    ).all()
                    conn.commit()
                assert {r[0] for r in rows} == {name}, rows
                assert rows[0][1] == f'"{name}", "public"'
    finally:
        engine.dispose()
