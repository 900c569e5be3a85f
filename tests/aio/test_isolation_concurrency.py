"""Isolation under concurrency: hundreds of concurrent requests through Quart's test client across
20+ tenants on a pool much smaller than the number of tasks, with requests that fail half-way,
cancelled requests (while awaiting and in the middle of a query) and requests that commit three
times. Every response is checked against the tenant that sent it; afterwards every pooled
connection must be back on the default search_path and every tenant must hold exactly its rows.

A second test swaps the transaction hook for a session-level ``SET search_path`` done once per
request (what per-request tenancy libraries do) and asserts that the same check catches it, so
the first test is known to be able to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from flask_tenants import isolation
from flask_tenants.aio import QuartTenants
from flask_tenants.context import TenantBinding, tenant_context

from ..conftest import full_size
from .app import create_shared_tables, make_app
from .models import Tank

N_TENANTS = 24
POOL_SIZE = 5
N_REQUESTS = 2400 if full_size() else 240
DEFAULT_PATH = '"$user", public'
KINDS = ["check"] * 45 + ["multi"] * 20 + ["post"] * 10 + ["boom"] * 10 + ["cancel"] * 10
KINDS += ["cancel_query"] * 5


@dataclass
class Report:
    responses: Counter[str] = field(default_factory=Counter)
    wrong_rows: int = 0
    wrong_paths: int = 0
    wrong_tenant: int = 0
    unexpected: list[str] = field(default_factory=list)
    written: Counter[str] = field(default_factory=Counter)
    leftover_paths: list[str] = field(default_factory=list)
    rows_elsewhere: int = 0
    count_mismatch: list[str] = field(default_factory=list)
    checked_out_after: int = 0

    @property
    def leaks(self) -> int:
        return (
            self.wrong_rows
            + self.wrong_paths
            + self.wrong_tenant
            + len(self.leftover_paths)
            + self.rows_elsewhere
            + len(self.count_mismatch)
        )


def first_schema(path: str) -> str:
    return path.split(",")[0].strip().strip('"')


async def seed(tenancy: QuartTenants, n: int) -> list[str]:
    names = [f"t{i:02d}" for i in range(n)]
    for name in names:
        await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        async with tenancy.with_db(name) as s:
            s.add_all([Tank(name=f"{name}-seed-{k}") for k in range(2)])
            await s.commit()
    return names


async def one(client: Any, kind: str, tenant: str, n: int, rep: Report, rng: random.Random) -> None:
    host = {"Host": f"{tenant}.example.com"}
    if kind in ("cancel", "cancel_query"):
        path = "/slow" if kind == "cancel" else "/slowquery"
        task = asyncio.ensure_future(client.get(path, headers=host))
        await asyncio.sleep(rng.uniform(0.02, 0.2))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            r = await task
            rep.unexpected.append(f"{kind} finished: {r.status_code}")
            return
        rep.responses[kind + ":cancelled"] += 1
        return
    if kind == "check":
        r = await client.get("/check", headers=host)
    elif kind == "multi":
        r = await client.post("/multi", headers=host)
    elif kind == "post":
        r = await client.post("/tanks", json={"name": f"{tenant}-w-{n}"}, headers=host)
    else:
        r = await client.get("/boom", headers=host)
    rep.responses[f"{kind}:{r.status_code}"] += 1
    expected = {"check": 200, "multi": 200, "post": 201, "boom": 500}[kind]
    if r.status_code != expected:
        rep.unexpected.append(f"{kind} {tenant}: {r.status_code} {(await r.get_data())[:200]!r}")
        return
    if kind == "boom":
        return
    data = await r.get_json()
    if kind == "post":
        rep.written[tenant] += 1
        return
    if kind == "multi":
        rep.written[tenant] += 3
    if data["tenant"] != tenant:
        rep.wrong_tenant += 1
    rep.wrong_rows += sum(1 for name in data["names"] if not name.startswith(tenant + "-"))
    rep.wrong_paths += sum(1 for p in data["paths"] if first_schema(p) != tenant)


async def storm(app: Quart, tenancy: QuartTenants, tenants: list[str], seed_: int) -> Report:
    rep = Report()
    rng = random.Random(seed_)
    client = app.test_client()
    jobs = [(rng.choice(KINDS), rng.choice(tenants), n) for n in range(N_REQUESTS)]
    # every tenant gets every kind at least once
    jobs += [(kind, t, N_REQUESTS + i) for i, t in enumerate(tenants) for kind in ("multi", "boom")]
    await asyncio.gather(*(one(client, k, t, n, rep, rng) for k, t, n in jobs))
    await check_afterwards(tenancy, app, tenants, rep)
    return rep


async def check_afterwards(
    tenancy: QuartTenants, app: Quart, tenants: list[str], rep: Report
) -> None:
    engine = tenancy.state_for(app).engine
    await asyncio.sleep(0.05)  # let closes scheduled by cancelled requests finish
    rep.checked_out_after = engine.pool.checkedout()
    # every connection of the pool, held at once so each is a different one
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(engine.connect()) for _ in range(POOL_SIZE)]
        for c in conns:
            path = (await c.execute(text("SHOW search_path"))).scalar()
            if path != DEFAULT_PATH:
                rep.leftover_paths.append(str(path))
    for t in tenants:
        async with tenancy.with_db(t) as s:
            names = (await s.execute(select(Tank.name))).scalars().all()
            rep.rows_elsewhere += sum(1 for name in names if not name.startswith(t + "-"))
            rep.rows_elsewhere += sum(1 for name in names if name == "never")
            expected = 2 + rep.written[t]
            if len(names) != expected:
                rep.count_mismatch.append(f"{t}: {len(names)} rows, expected {expected}")
    async with tenancy.with_db() as s:  # nothing may have landed in public
        exists = (await s.execute(text("SELECT to_regclass('public.tanks') IS NOT NULL"))).scalar()
        if exists:
            rep.rows_elsewhere += (await s.execute(select(func.count()).select_from(Tank))).scalar()


@pytest.fixture
async def storm_app(fresh_db: str) -> Any:
    app, tenancy = make_app(
        fresh_db,
        TENANTS_ENGINE_OPTIONS={"pool_size": POOL_SIZE, "max_overflow": 0, "pool_timeout": 60},
    )
    await create_shared_tables(tenancy, app)
    tenants = await seed(tenancy, N_TENANTS)
    logging.getLogger("tests.aio.app").disabled = True  # the /boom tracebacks
    try:
        yield app, tenancy, tenants
    finally:
        logging.getLogger("tests.aio.app").disabled = False
        await tenancy.dispose()


async def test_no_leaks_under_concurrency(storm_app: Any) -> None:
    app, tenancy, tenants = storm_app
    assert len(tenants) >= 20 and N_REQUESTS >= 200 and POOL_SIZE < N_REQUESTS
    rep = await storm(app, tenancy, tenants, seed_=4)
    print(f"\nhook: {sum(rep.responses.values())} requests {dict(rep.responses)} leaks={rep.leaks}")
    assert rep.unexpected == []
    assert rep.leaks == 0, rep
    assert rep.checked_out_after == 0
    # the mix really happened
    for kind in ("check:200", "multi:200", "post:201", "boom:500", "cancel:cancelled"):
        assert rep.responses[kind] >= 5, rep.responses
    assert rep.responses["cancel_query:cancelled"] >= 2, rep.responses


async def test_the_check_catches_a_session_level_search_path(
    storm_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replace the hook by a session-level SET done once per request: the check must see it."""
    app, tenancy, tenants = storm_app
    done: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def session_level_once_per_request(conn: Connection, binding: TenantBinding) -> None:
        task = asyncio.current_task()
        if task is None or task in done:
            return
        done.add(task)
        conn.exec_driver_sql(f"SET search_path TO {binding.search_path}")

    monkeypatch.setattr(isolation, "apply_binding", session_level_once_per_request)
    rep = await storm(app, tenancy, tenants, seed_=4)
    print(
        f"\nsession-level SET: wrong rows {rep.wrong_rows}, wrong paths {rep.wrong_paths}, "
        f"pooled connections left on a tenant path {len(rep.leftover_paths)}/{POOL_SIZE}"
    )
    assert rep.leftover_paths, "session-level SET must leave paths on pooled connections"
    assert rep.wrong_rows + rep.wrong_paths > 0, "multi-commit requests must see other tenants"


async def test_engines_derived_from_the_async_engine_switch_too(storm_app: Any) -> None:
    app, tenancy, tenants = storm_app
    engine = tenancy.state_for(app).engine
    assert not engine.sync_engine.dispatch.begin and not engine.sync_engine.dispatch.commit
    derived = [engine, engine.execution_options(app_marker="a")]
    derived.append(derived[1].execution_options(app_marker="b"))

    async def names(conn: Any) -> list[str]:
        return list((await conn.execute(text("SELECT name FROM tanks ORDER BY id"))).scalars())

    async def one_engine(eng: Any, tenant: str) -> None:
        with tenant_context(tenant):
            async with eng.connect() as conn:
                for _ in range(3):  # a new transaction on the same connection switches again
                    assert await names(conn) == [f"{tenant}-seed-0", f"{tenant}-seed-1"]
                    await conn.commit()

    # concurrently, each task in its own tenant, through every derived engine
    await asyncio.gather(*(one_engine(eng, t) for eng in derived for t in tenants[:8]))
