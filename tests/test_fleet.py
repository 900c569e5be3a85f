"""for_each_tenant: each tenant in its own schema and transaction; sync and async (asyncpg)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from flask_tenants import current_tenant, with_db
from flask_tenants.exceptions import ConfigurationError, InvalidTenantNameError
from flask_tenants.fleet import for_each_tenant, for_each_tenant_async
from tests.sample_app import Tank, make_app

COUNTS = {"acme": 1, "globex": 2, "initech": 3}


@pytest.fixture
def app(fresh_db: str) -> Flask:
    app = make_app(fresh_db)
    tenancy = app.extensions["test_tenancy"]
    for name, n in COUNTS.items():
        tenancy.create_tenant(name)
        with app.app_context(), with_db(name) as s:
            s.add_all(Tank(name=f"{name}-{i}") for i in range(n))
            s.commit()
    return app


def _count(s: Session) -> tuple[str | None, int]:
    return current_tenant(), int(s.scalar(select(func.count(Tank.id))) or 0)


def test_sync_visits_every_tenant_in_its_schema(app: Flask) -> None:
    with app.app_context():
        got = list(for_each_tenant(_count))
    assert got == [(n, (n, c)) for n, c in sorted(COUNTS.items())]
    assert current_tenant() is None


def test_sync_statement_and_chosen_tenants(app: Flask) -> None:
    with app.app_context():
        got = dict(for_each_tenant(select(Tank.name).order_by(Tank.name), ["initech", "acme"]))
    assert list(got) == ["initech", "acme"]
    assert [r[0] for r in got["acme"]] == ["acme-0"]
    assert [r[0] for r in got["initech"]] == ["initech-0", "initech-1", "initech-2"]


def test_sync_rolls_back_unless_commit(app: Flask) -> None:
    def add(s: Session) -> None:
        s.add(Tank(name="new"))
        s.flush()

    with app.app_context():
        list(for_each_tenant(add))
        assert dict(for_each_tenant(_count)) == {n: (n, c) for n, c in COUNTS.items()}
        list(for_each_tenant(add, commit=True))
        assert dict(for_each_tenant(_count)) == {n: (n, c + 1) for n, c in COUNTS.items()}


def test_sync_errors_raise_or_return(app: Flask) -> None:
    def fail_on_globex(s: Session) -> int:
        if current_tenant() == "globex":
            s.execute(text("SELECT no_such_column FROM tanks"))
        return 1

    with app.app_context():
        it = for_each_tenant(fail_on_globex)
        assert next(it) == ("acme", 1)
        with pytest.raises(Exception, match="no_such_column"):
            next(it)
        got = dict(for_each_tenant(fail_on_globex, errors="return"))
    assert got["acme"] == 1 and got["initech"] == 1
    assert isinstance(got["globex"], Exception)


def test_sync_skips_deactivated_when_asked(app: Flask) -> None:
    app.extensions["test_tenancy"].deactivate_tenant("globex")
    with app.app_context():
        assert [t for t, _ in for_each_tenant(_count)] == ["acme", "globex", "initech"]
        names = [t for t, _ in for_each_tenant(_count, include_deactivated=False)]
    assert names == ["acme", "initech"]


def test_bad_names_are_refused_before_sql(app: Flask) -> None:
    with app.app_context(), pytest.raises(InvalidTenantNameError):
        list(for_each_tenant(_count, ["acme", "x; DROP SCHEMA acme"]))


def _async_engine(url: str) -> Any:
    pytest.importorskip("greenlet")
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"))


def test_async_bounded_concurrency_and_results(app: Flask, fresh_db: str) -> None:
    engine = _async_engine(fresh_db)
    running = 0
    peak = 0

    async def slow_count(session: Any) -> tuple[str | None, int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await session.execute(text("SELECT pg_sleep(0.05)"))
        n = (await session.execute(select(func.count(Tank.id)))).scalar_one()
        running -= 1
        return current_tenant(), n

    async def main() -> dict[str, Any]:
        out = {}
        names = [*COUNTS] * 3  # the same tenants repeatedly, 9 units of work
        async for tenant, result in for_each_tenant_async(
            slow_count, names, concurrency=3, engine=engine
        ):
            out.setdefault(tenant, []).append(result)
        assert current_tenant() is None
        await engine.dispose()
        return out

    with app.app_context():
        t0 = time.perf_counter()
        out = asyncio.run(main())
        elapsed = time.perf_counter() - t0
    for name, n in COUNTS.items():
        assert out[name] == [(name, n)] * 3
    assert peak == 3  # bounded: never more than `concurrency` at a time
    assert elapsed < 9 * 0.05  # and really concurrent


def test_async_all_tenants_statement_commit_and_errors(app: Flask, fresh_db: str) -> None:
    engine = _async_engine(fresh_db)

    async def add(session: Any) -> str:
        if current_tenant() == "globex":
            raise RuntimeError("globex refused")
        session.add(Tank(name="async"))
        return "ok"

    async def main() -> None:
        got = {
            t: r
            async for t, r in for_each_tenant_async(
                add, commit=True, errors="return", engine=engine
            )
        }
        assert got["acme"] == "ok" and got["initech"] == "ok"
        assert isinstance(got["globex"], RuntimeError)
        counts = {
            t: len(rows) async for t, rows in for_each_tenant_async(select(Tank.id), engine=engine)
        }
        assert counts == {"acme": 2, "globex": 2, "initech": 4}
        with pytest.raises(RuntimeError, match="globex refused"):
            async for _ in for_each_tenant_async(add, engine=engine, concurrency=1):
                pass
        await engine.dispose()

    with app.app_context():
        asyncio.run(main())


def test_async_early_exit_cancels_the_rest(app: Flask, fresh_db: str) -> None:
    engine = _async_engine(fresh_db)
    finished: list[str] = []

    async def slow(session: Any) -> None:
        await session.execute(text("SELECT pg_sleep(0.2)"))
        finished.append(current_tenant() or "")

    async def main() -> None:
        names = ["acme", "globex", "initech"]
        async for _tenant, _ in for_each_tenant_async(slow, names, concurrency=1, engine=engine):
            break
        await asyncio.sleep(0.3)
        assert len(finished) == 1  # the other two were never started
        # the pool is intact: every connection was returned
        assert engine.pool.checkedout() == 0
        await engine.dispose()

    with app.app_context():
        asyncio.run(main())


def test_async_needs_an_async_engine_on_the_sync_door(app: Flask) -> None:
    async def main() -> None:
        async for _ in for_each_tenant_async(select(Tank.id)):
            pass

    with app.app_context(), pytest.raises(ConfigurationError, match="AsyncEngine"):
        asyncio.run(main())
