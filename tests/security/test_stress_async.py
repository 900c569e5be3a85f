"""Stress of the async door: asyncio tasks sharing one Quart app, an asyncpg pool smaller than
the concurrency, faults injected at random -- the sync faults plus cancelled tasks (the client
goes away while the view awaits the database). Every answer is checked against the tenant that
asked for it. ``TENANTS_FULL=1`` runs the full size (>= 10,000 requests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ._aio_app import make_aio_app
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
TASKS = 32
REQUESTS = 10_500 if full_size() else 1500
FAULT_RATE = 0.12
KINDS = FAILING + SURVIVED + ("cancel",)


def seed_sync(fresh_db: str, admin: Engine, tenants: list[str]) -> None:
    """Tenants, domains and rows, made through the sync door (the schema is the same)."""
    engine = make_engine(with_driver(fresh_db, "psycopg"))
    try:
        create_shared(engine)
        app, ext = make_app(engine, admin)
        seed(app, ext, tenants)
    finally:
        engine.dispose()


async def get(client: Any, tenant: str, fault: str, method: str = "GET") -> tuple[int, Any]:
    r = await client.open(f"/items?fault={fault}", method=method, headers={"Host": host_of(tenant)})
    return r.status_code, await r.get_json()


async def run_tasks(
    app: Any, admin: Engine, stats: Stats, tenants: list[str], total: int, seed_: int
) -> None:
    client = app.test_client()
    remaining = [total]

    async def worker(i: int) -> None:
        rng = random.Random(seed_ * 1000 + i)
        while remaining[0] > 0:
            remaining[0] -= 1
            tenant = rng.choice(tenants)
            fault = pick_fault(rng, FAULT_RATE, KINDS)
            if fault == "cancel":
                task = asyncio.ensure_future(get(client, tenant, "slow"))
                await asyncio.sleep(rng.uniform(0.0, 0.08))
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    status, body = await task
                    # finished before the cancel: it must be right all the same
                    check(stats, tenant, "", status, body)
                    continue
                with stats.lock:
                    stats.requests += 1
                    stats.faults["cancel"] += 1
                    stats.failed_by_fault += 1
                ok = False
            else:
                if fault == "kill_idle":
                    killed = await asyncio.to_thread(kill_idle, admin, "ft_stress_aio", rng)
                    stats.kills += killed
                method = "POST" if fault == "write" and rng.random() < 0.5 else "GET"
                status, body = await get(client, tenant, fault, method)
                ok = check(stats, tenant, fault, status, body)
            if not ok:
                # the app keeps serving: the next request of this task must work
                status, body = await get(client, tenant, "")
                recovered(stats, check(stats, tenant, "", status, body), body)

    await asyncio.gather(*(worker(i) for i in range(TASKS)))


def aio_engine(fresh_db: str, **kw: Any) -> AsyncEngine:
    return create_async_engine(
        with_driver(fresh_db, "asyncpg"),
        pool_size=4,
        max_overflow=2,
        pool_timeout=60,
        connect_args={"server_settings": {"application_name": "ft_stress_aio"}},
        **kw,
    )


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre_ping", "no_pre_ping"])
async def test_stress_tasks_with_faults(fresh_db: str, admin: Engine, pre_ping: bool) -> None:
    """>= 20 tenants, 32 tasks on 4+2 pooled asyncpg connections, faults of every kind
    including cancelled tasks: no wrong row, no request in the wrong schema, the app serves on
    after every fault and no connection is left checked out."""
    tenants = TENANT_NAMES[:TENANTS]
    seed_sync(fresh_db, admin, tenants)
    engine = aio_engine(fresh_db, pool_pre_ping=pre_ping)
    admin_aio = create_async_engine(with_driver(fresh_db, "asyncpg"), isolation_level="AUTOCOMMIT")
    quiet = [logging.getLogger(n) for n in ("flask_tenants", "quart.app", "asyncio")]
    for lg in quiet:
        lg.disabled = True
    try:
        app, _ = make_aio_app(engine, admin_aio)
        requests = REQUESTS // 2
        stats = Stats(f"async asyncpg pre_ping={pre_ping}")
        t0 = time.perf_counter()
        await run_tasks(app, admin, stats, tenants, requests, seed_=11 if pre_ping else 13)
        stats.label += f" ({time.perf_counter() - t0:.1f}s)"
        # asyncpg: a connection killed while idle between two statements of a request can fail
        # that request and, now and then, the next use of the connection it was being
        # replaced by ("another operation is in progress"): seen at most twice per kill
        stats.assert_clean(requests, failures_per_kill=2)
        assert set(stats.faults) == set(KINDS), stats.faults
        assert written_rows_check(admin, tenants) == 0
        client = app.test_client()  # and the app still serves every tenant
        for t in tenants:
            status, body = await get(client, t, "")
            assert check(stats, t, "", status, body), body
        await asyncio.sleep(0.1)  # closes scheduled by cancelled requests
        assert engine.pool.checkedout() == 0
        cons = consistency(admin)
        assert not cons.tenants_without_schema and not cons.orphan_schemas, cons
    finally:
        for lg in quiet:
            lg.disabled = False
        await engine.dispose()
        await admin_aio.dispose()
