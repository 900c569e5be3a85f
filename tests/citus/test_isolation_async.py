"""The async door's isolation check (tests/aio/test_isolation_concurrency.py: hundreds of
concurrent Quart requests, cancellations, multi-commit requests, a small asyncpg pool) on the Citus
cluster, in a database of its own (the sync check's app has other models)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from flask_tenants import citus

from .conftest import CitusDB

pytest.importorskip("quart")


async def test_async_door_no_leaks_under_concurrency(citus_db: CitusDB) -> None:
    pytest.importorskip("quart")
    from tests.aio import test_isolation_concurrency as aio_iso
    from tests.aio.app import create_shared_tables, make_app

    app, tenancy = make_app(
        citus_db.url,  # plain URL: the Quart door uses asyncpg
        TENANTS_ENGINE_OPTIONS={
            "pool_size": aio_iso.POOL_SIZE,
            "max_overflow": 0,
            "pool_timeout": 60,
        },
    )
    try:
        await create_shared_tables(tenancy, app)
        # names of their own: the sync test's t00..t09 live in this database too
        names = [f"a{i:02d}" for i in range(12)]
        for name in names:
            await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
            async with tenancy.with_db(name) as s:
                s.add_all([aio_iso.Tank(name=f"{name}-seed-{k}") for k in range(2)])
                await s.commit()
        async with tenancy.state_for(app).engine.connect() as c:
            placed = await c.run_sync(citus.tenant_placements)
            assert (await c.execute(text("SELECT to_regclass('public.tanks')"))).scalar() is None
        assert set(Counter(placed[n] for n in names)) == set(citus_db.workers)
        rep = await aio_iso.storm(app, tenancy, names, seed_=7)
        assert rep.unexpected == []
        assert rep.leaks == 0, rep
        assert rep.checked_out_after == 0
        for kind in ("check:200", "multi:200", "post:201", "boom:500"):
            assert rep.responses[kind] >= 5, rep.responses
    finally:
        await tenancy.dispose()
