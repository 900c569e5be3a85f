"""The asyncpg fast path: the tenant's search_path travels with the transaction's ``BEGIN``.

Counted on the wire (``benchmarks/wire_count.py``): a tenant transaction costs the plain one's
round trips plus one statement. And it keeps every guarantee of the plain hook: a missing schema
fails closed and leaves the pooled connection usable, nothing survives a transaction that never
reached the server, isolation levels and read-only transactions keep their ``BEGIN``, concurrent
tasks on a small pool each see their own tenant, and a ``connection_class`` of your own keeps the
plain hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from benchmarks.wire_count import WireCounter
from flask_tenants import tenant_context
from flask_tenants._fold import _build_asyncpg
from flask_tenants.exceptions import TenantSchemaMissingError
from flask_tenants.isolation import install

SHARED = ("public",)
SCHEMAS = ("public", "acme", "globex")


def asyncpg_url(url: str, port: int | None = None) -> str:
    u = make_url(url).set(drivername="postgresql+asyncpg")
    if port is not None:
        u = u.set(port=port)
    return u.render_as_string(hide_password=False)


@pytest.fixture
def wire(fresh_db: str) -> Iterator[WireCounter]:
    u = make_url(fresh_db)
    with WireCounter(u.host or "127.0.0.1", u.port or 5432) as counter:
        yield counter


async def make_schemas(url: str) -> None:
    eng = create_async_engine(asyncpg_url(url))
    try:
        async with eng.begin() as conn:
            for schema in SCHEMAS:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.execute(text(f'CREATE TABLE "{schema}".items (v text)'))
                await conn.execute(
                    text(f'INSERT INTO "{schema}".items VALUES (:v)'),  # noqa: S608
                    {"v": schema},
                )
    finally:
        await eng.dispose()


@pytest.fixture
async def engine(fresh_db: str, wire: WireCounter) -> AsyncIterator[AsyncEngine]:
    """An engine with the hook through the counting proxy, one pooled connection."""
    await make_schemas(fresh_db)
    eng = create_async_engine(asyncpg_url(fresh_db, wire.port), pool_size=1, max_overflow=0)
    install(eng)
    yield eng
    await eng.dispose()


async def items(conn: Any) -> list[str]:
    return [r[0] for r in (await conn.execute(text("SELECT v FROM items"))).all()]


async def test_a_tenant_transaction_costs_one_statement_and_no_round_trip(
    engine: AsyncEngine, wire: WireCounter
) -> None:
    async with engine.connect() as conn:
        assert await items(conn) == ["public"]  # warm: the statement is prepared
        await conn.rollback()
        wire.reset()
        assert await items(conn) == ["public"]
        await conn.rollback()
        plain = wire.reset()
        with tenant_context("acme", SHARED):
            assert await items(conn) == ["acme"]
            await conn.rollback()
        tenant = wire.reset()
        raw = await conn.get_raw_connection()
        assert type(raw.driver_connection) is _build_asyncpg()
    assert tenant.statements == plain.statements + 1, (plain.by_sql, tenant.by_sql)
    assert tenant.round_trips == plain.round_trips, (plain.by_sql, tenant.by_sql)
    assert tenant.matching("set_config('search_path'") == 1


async def test_a_missing_schema_fails_closed_and_the_connection_serves_on(
    engine: AsyncEngine, wire: WireCounter
) -> None:
    for _ in range(2):  # twice on the one pooled connection: the failure left nothing behind
        async with engine.connect() as conn:
            with tenant_context("gone", SHARED):
                wire.reset()
                with pytest.raises(TenantSchemaMissingError):
                    await conn.execute(text("SELECT v FROM items"))
                assert wire.stats.matching("FROM items") <= 1  # never ran after the check
                await conn.rollback()
            with tenant_context("globex", SHARED):
                assert await items(conn) == ["globex"]
                await conn.commit()
            assert await items(conn) == ["public"]
            await conn.rollback()


async def test_nothing_survives_a_transaction_that_sent_nothing(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with tenant_context("acme", SHARED):
            await conn.begin()
            await conn.commit()  # began in the tenant, sent nothing
            await conn.begin()
            await conn.rollback()
        # outside any tenant, the same pooled connection: the default path
        assert await items(conn) == ["public"]
        assert (await conn.execute(text("SHOW search_path"))).scalar() == '"$user", public'
        await conn.rollback()
        with tenant_context("acme", SHARED):
            assert await items(conn) == ["acme"]
            await conn.commit()
        assert await items(conn) == ["public"]
        await conn.rollback()


async def test_isolation_levels_and_read_only_keep_their_begin(engine: AsyncEngine) -> None:
    with tenant_context("acme", SHARED):
        serializable = engine.execution_options(isolation_level="SERIALIZABLE")
        async with serializable.connect() as conn:
            level = (await conn.execute(text("SHOW transaction_isolation"))).scalar()
            assert (level, await items(conn)) == ("serializable", ["acme"])
            await conn.rollback()
        async with engine.connect() as conn:
            await conn.execution_options(postgresql_readonly=True)
            assert (await conn.execute(text("SHOW transaction_read_only"))).scalar() == "on"
            assert await items(conn) == ["acme"]
            await conn.rollback()


async def test_concurrent_tasks_on_a_small_pool_each_see_their_tenant(fresh_db: str) -> None:
    await make_schemas(fresh_db)
    eng = create_async_engine(asyncpg_url(fresh_db), pool_size=2, max_overflow=0)
    install(eng)
    wrong: list[tuple[str | None, list[str]]] = []

    async def worker(i: int) -> None:
        tenant = (None, "acme", "globex")[i % 3]
        for k in range(15):
            async with eng.connect() as conn:
                if tenant is None:
                    got = await items(conn)
                else:
                    with tenant_context(tenant, SHARED):
                        got = await items(conn)
                        if k % 4 == 0:
                            await conn.commit()
                            got += await items(conn)
                if k % 5 == 0:
                    await asyncio.sleep(0)
                await conn.rollback()
            want = [tenant or "public"] * len(got)
            if got != want or not got:
                wrong.append((tenant, got))

    try:
        await asyncio.gather(*(worker(i) for i in range(12)))
    finally:
        await eng.dispose()
    assert wrong == []


async def test_a_connection_class_of_your_own_gets_the_plain_hook(
    fresh_db: str, wire: WireCounter
) -> None:
    await make_schemas(fresh_db)

    class Mine(asyncpg.Connection):  # type: ignore[misc]
        pass

    eng = create_async_engine(
        asyncpg_url(fresh_db, wire.port), connect_args={"connection_class": Mine}
    )
    install(eng)
    try:
        async with eng.connect() as conn:
            with tenant_context("acme", SHARED):
                wire.reset()
                assert await items(conn) == ["acme"]
                stats = wire.reset()
                raw = await conn.get_raw_connection()
                assert type(raw.driver_connection) is Mine
            await conn.rollback()
        # BEGIN, then the hook's statement on its own, then the query
        assert stats.matching("set_config('search_path'") == 1
        assert stats.round_trips >= 3, stats.by_sql
    finally:
        await eng.dispose()


def test_the_folding_class_is_an_asyncpg_connection() -> None:
    assert issubclass(_build_asyncpg(), asyncpg.Connection)


async def test_fast_and_plain_hook_paths_mixed_on_shared_connections_under_tasks(
    fresh_db: str,
) -> None:
    """Tasks share a small pool; each checkout takes the fast path or, with a statement
    listener on its Connection or ``tenants_fast_path=False``, the plain hook, on whichever
    asyncpg connection it gets. Every read must name the tenant it ran for."""
    import random

    from sqlalchemy import event

    await make_schemas(fresh_db)
    eng = create_async_engine(asyncpg_url(fresh_db), pool_size=3, max_overflow=0)
    install(eng)
    wrong: list[tuple[str, str, list[str]]] = []
    paths: dict[str, int] = {"fast": 0, "listener": 0, "option": 0}

    def listener(*args: Any) -> None:
        pass

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            tenant = rng.choice(("acme", "globex"))
            path = rng.choice(tuple(paths))
            target = eng.execution_options(tenants_fast_path=False) if path == "option" else eng
            async with target.connect() as conn:
                if path == "listener":
                    event.listen(conn.sync_connection, "before_cursor_execute", listener)
                with tenant_context(tenant, SHARED):
                    for _ in range(rng.randint(1, 2)):
                        got = await items(conn)
                        if got != [tenant]:
                            wrong.append((tenant, path, got))
                        await asyncio.sleep(0)
                        await (conn.commit() if rng.random() < 0.5 else conn.rollback())
            paths[path] += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(10)))
    finally:
        await eng.dispose()
    assert not wrong, wrong[:5]
    assert all(n > 50 for n in paths.values()), paths
