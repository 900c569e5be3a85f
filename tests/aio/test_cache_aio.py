"""The Quart door's resolution cache: one fingerprint query per TTL checks every cached answer,
and a change made behind the library's back (raw SQL) is seen within the TTL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event, text

from .app import create_shared_tables, make_app

TTL = 0.3


async def test_the_fingerprint_check_sees_raw_sql_changes_within_the_ttl(fresh_db: str) -> None:
    app, tenancy = make_app(fresh_db, TENANTS_CACHE_TTL=TTL)
    await create_shared_tables(tenancy, app)
    engine = tenancy.state_for(app).engine
    try:
        for name in ("acme", "globex"):
            await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        client = app.test_client()

        async def code(name: str) -> int:
            r = await client.get("/tanks", headers={"Host": f"{name}.example.com"})
            return int(r.status_code)

        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "ft_tenants" in statement or "FROM tenants" in statement:
                statements.append(statement)

        assert await code("acme") == 200 and await code("globex") == 200
        await asyncio.sleep(TTL + 0.05)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            # after the TTL: one check, no lookups (both answers still cached)
            assert [await code("acme"), await code("globex"), await code("acme")] == [200] * 3
            assert len(statements) == 1 and "ft_tenants" in statements[0], statements
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)

        async with engine.begin() as conn:  # not through the library: nothing invalidates
            await conn.execute(text("UPDATE tenants SET deactivated = true WHERE name = 'acme'"))
        changed = time.monotonic()
        seen: list[tuple[float, int]] = []
        while time.monotonic() < changed + TTL + 0.2:
            seen.append((time.monotonic() - changed, await code("acme")))
            await asyncio.sleep(0.01)
        late = {c for t, c in seen if t > TTL}
        assert late == {403}, seen
    finally:
        await tenancy.dispose()
