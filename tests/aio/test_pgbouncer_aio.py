"""The async door behind a real PgBouncer in transaction pooling mode.

asyncpg prepares every statement on the server connection it runs on; PgBouncer (before 1.21)
hands the next transaction to any server connection, where that statement does not exist, or
where another client's statement of the same name does. The documented setting,
``?prepared_statement_cache_size=0`` on the URL, makes the door turn asyncpg's statement caches
off and name each statement uniquely. With it: no errors and no wrong rows; without it: errors
(the control, so the test can fail).
"""

from __future__ import annotations

import asyncio
import random

from quart import Quart

from flask_tenants.aio import QuartTenants

from ..security.conftest import Bouncer, pgbouncer  # noqa: F401 - the fixture
from .app import create_shared_tables, make_app
from .models import Tank

TENANTS = [f"b{i:02d}" for i in range(8)]
REQUESTS = 200


async def seeded(url: str) -> tuple[Quart, QuartTenants]:
    app, tenancy = make_app(url, TENANTS_ENGINE_OPTIONS={"pool_size": 10, "max_overflow": 0})
    await create_shared_tables(tenancy, app)
    for name in TENANTS:
        await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        async with tenancy.with_db(name) as s:
            s.add(Tank(name=f"{name}-seed"))
            await s.commit()
    return app, tenancy


async def hammer(app: Quart) -> tuple[int, int, int]:
    """(ok, failed, wrong rows) for REQUESTS concurrent check/multi requests."""
    client = app.test_client()
    rng = random.Random(7)
    ok = failed = wrong = 0

    async def one(i: int) -> None:
        nonlocal ok, failed, wrong
        name = rng.choice(TENANTS)
        h = {"Host": f"{name}.example.com"}
        r = await (
            client.post("/multi", headers=h) if i % 3 == 0 else client.get("/check", headers=h)
        )
        if r.status_code != 200:
            failed += 1
            return
        ok += 1
        data = await r.get_json()
        wrong += sum(1 for n in data["names"] if not n.startswith(name + "-"))
        wrong += sum(1 for p in data["paths"] if p.split(",")[0].strip('"') != name)

    await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    return ok, failed, wrong


def through(bouncer: Bouncer, fresh_db: str, query: str = "") -> str:
    return bouncer.url_for(fresh_db.rsplit("/", 1)[1], "asyncpg") + query


async def test_pgbouncer_setting_gives_no_errors_and_no_wrong_rows(
    pgbouncer: Bouncer,  # noqa: F811
    fresh_db: str,
) -> None:
    app, tenancy = await seeded(through(pgbouncer, fresh_db, "?prepared_statement_cache_size=0"))
    try:
        ok, failed, wrong = await hammer(app)
    finally:
        await tenancy.dispose()
    print(f"\nasyncpg via PgBouncer, cache off: ok={ok} failed={failed} wrong rows={wrong}")
    assert (ok, failed, wrong) == (REQUESTS, 0, 0)


async def test_without_the_setting_asyncpg_fails_behind_pgbouncer(
    pgbouncer: Bouncer,  # noqa: F811
    fresh_db: str,
) -> None:
    """The control: the default statement cache does not survive transaction pooling."""
    direct_app, direct = await seeded(fresh_db)  # set up without PgBouncer
    await direct.dispose()
    app, tenancy = make_app(through(pgbouncer, fresh_db), TENANTS_ENGINE_OPTIONS={"pool_size": 10})
    app.logger.disabled = True
    try:
        ok, failed, wrong = await hammer(app)
    finally:
        app.logger.disabled = False
        await tenancy.dispose()
    print(f"\nasyncpg via PgBouncer, default cache: ok={ok} failed={failed} wrong rows={wrong}")
    assert failed > 0, "asyncpg's statement cache should break behind transaction pooling"
    assert wrong == 0  # failing, never answering from another tenant
