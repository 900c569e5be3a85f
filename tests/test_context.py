"""One tenant context everywhere: tenant_context / current_tenant / with_db in threads, asyncio
tasks and greenlets, on a real database."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flask_tenants import current_tenant, tenant_context, with_db
from flask_tenants.context import current_binding
from flask_tenants.isolation import install
from tests.sample_app import Tank, make_app

TENANTS = ("acme", "globex", "initech")


def _seed(app: Flask) -> None:
    tenancy = app.extensions["test_tenancy"]
    for name in TENANTS:
        tenancy.create_tenant(name)
        with app.app_context(), with_db(name) as s:
            s.add_all(Tank(name=f"{name}-{i}") for i in range(3))
            s.commit()


@pytest.fixture
def app(fresh_db: str) -> Flask:
    app = make_app(fresh_db)
    _seed(app)
    return app


def test_nested_contexts_restore_the_outer_one() -> None:
    assert current_tenant() is None
    with tenant_context("acme") as outer:
        assert current_tenant() == "acme" and outer.schema == "acme"
        with tenant_context("globex"):
            assert current_tenant() == "globex"
            with tenant_context(None):
                assert current_tenant() == "public"
                assert current_binding() is not None and current_binding().is_public  # type: ignore[union-attr]
            assert current_tenant() == "globex"
        assert current_tenant() == "acme"
    assert current_tenant() is None


def test_the_same_context_object_can_be_reentered() -> None:
    ctx = tenant_context("acme")
    with ctx, tenant_context("globex"), ctx:
        assert current_tenant() == "acme"
    assert current_tenant() is None


def test_exception_inside_restores() -> None:
    with pytest.raises(RuntimeError), tenant_context("acme"):
        raise RuntimeError("boom")
    assert current_tenant() is None


async def test_async_form_and_nesting() -> None:
    async with tenant_context("acme"):
        assert current_tenant() == "acme"
        async with tenant_context("globex"):
            assert current_tenant() == "globex"
        assert current_tenant() == "acme"
    assert current_tenant() is None


def test_invalid_name_is_refused_before_any_sql() -> None:
    with pytest.raises(ValueError, match="Invalid tenant name"):
        tenant_context("Robert'); DROP TABLE tenants;--")


def test_with_db_is_the_context_plus_a_session(app: Flask) -> None:
    with app.app_context():
        with with_db("acme") as s:
            assert current_tenant() == "acme"
            with with_db("globex") as s2:
                assert current_tenant() == "globex"
                assert {t.name for t in s2.query(Tank)} == {f"globex-{i}" for i in range(3)}
            assert current_tenant() == "acme"
            assert {t.name for t in s.query(Tank)} == {f"acme-{i}" for i in range(3)}
            # any other session begun inside the block works in the same tenant
            with tenant_context("initech"), with_db() as s3:
                assert {t.name for t in s3.query(Tank)} == {f"initech-{i}" for i in range(3)}
        assert current_tenant() is None


def _tank_names_in(app: Flask, tenant: str, barrier: threading.Barrier | None = None) -> set[str]:
    """The job body of the concurrent.futures pattern: enter the context *in the task*."""
    with app.app_context(), with_db(tenant) as s:
        if barrier is not None:
            barrier.wait(timeout=10)  # all workers hold a transaction at the same time
        names = {t.name for t in s.query(Tank)}
        s.rollback()
        return names


def test_threads_each_see_their_own_tenant(app: Flask) -> None:
    jobs = [TENANTS[i % 3] for i in range(30)]
    barrier = threading.Barrier(6)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda t: (t, _tank_names_in(app, t, barrier)), jobs[:6]))
        results += list(pool.map(lambda t: (t, _tank_names_in(app, t)), jobs[6:]))
    for tenant, names in results:
        assert names == {f"{tenant}-{i}" for i in range(3)}, tenant


def test_a_worker_thread_does_not_inherit_the_submitters_context(app: Flask) -> None:
    with tenant_context("acme"), ThreadPoolExecutor(max_workers=1) as pool:
        # threads start from an empty context: pass the tenant name, enter it in the task
        assert pool.submit(current_tenant).result() is None


def test_asyncio_tasks_are_isolated_and_inherit_a_copy(fresh_db: str) -> None:
    pytest.importorskip("greenlet")
    from sqlalchemy.ext.asyncio import create_async_engine

    app = make_app(fresh_db)
    _seed(app)
    url = make_url(fresh_db).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url)
    install(engine)

    async def job(tenant: str, gate: asyncio.Event) -> tuple[str, set[str]]:
        async with tenant_context(tenant):
            await gate.wait()  # every task is inside its own context before any query
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT name FROM tanks"))
                return current_tenant() or "", {r[0] for r in rows}

    async def main() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(job(TENANTS[i % 3], gate)) for i in range(12)]
        await asyncio.sleep(0)
        gate.set()
        for tenant, names in await asyncio.gather(*tasks):
            assert names == {f"{tenant}-{i}" for i in range(3)}
        async with tenant_context("acme"):
            inherited = await asyncio.create_task(_current())
            assert inherited == "acme"  # a task copies the context it was created in

            async def change() -> None:
                async with tenant_context("globex"):
                    pass
                with tenant_context("initech"):
                    await asyncio.sleep(0)

            await asyncio.create_task(change())
            assert current_tenant() == "acme"  # the child's changes stay in the child
        await engine.dispose()

    asyncio.run(main())


async def _current() -> str | None:
    return current_tenant()


def test_greenlets_switching_keep_their_own_tenant(app: Flask, fresh_db: str) -> None:
    greenlet = pytest.importorskip("greenlet")
    engine = create_engine(fresh_db)
    install(engine)
    seen: list[tuple[str, str | None, set[str]]] = []

    def worker(tenant: str) -> None:
        with tenant_context(tenant):
            for _ in range(3):
                with engine.connect() as conn:
                    names = {r[0] for r in conn.execute(text("SELECT name FROM tanks"))}
                seen.append((tenant, current_tenant(), names))
                greenlet.getcurrent().parent.switch()  # interleave with the other greenlets

    lets = [greenlet.greenlet(worker) for _ in TENANTS]
    for _ in range(4):
        for g, tenant in zip(lets, TENANTS, strict=True):
            if not g.dead:
                g.switch(tenant)
    assert all(g.dead for g in lets)
    assert current_tenant() is None  # nothing leaked into the main greenlet
    assert len(seen) == 9
    for tenant, current, names in seen:
        assert current == tenant
        assert names == {f"{tenant}-{i}" for i in range(3)}
    engine.dispose()


def test_jobs_example_runs(fresh_db: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "jobs_example.py"
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "DATABASE_URL": fresh_db},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "acme: marked 1 invoices paid, total 100 cents",
        "globex: marked 2 invoices paid, total 400 cents",
        "initech: marked 3 invoices paid, total 900 cents",
        "umbrella: marked 4 invoices paid, total 1600 cents",
    ]


def test_extras_tour_example_runs(fresh_db: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "extras_tour.py"
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "DATABASE_URL": fresh_db},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "renamed initech -> initrode" in lines
    assert "[('acme', 2), ('globex', 2), ('initrode', 2)]" in lines
    assert "allowed: ['welcome-globex', 'globex-customer']" in lines
    assert "totals: {'acme': 1000, 'globex': 1000, 'initrode': 1000}" in lines
    assert lines[-1] == "{'customers': ['welcome-globex', 'globex-customer'], 'tenant': 'globex'}"
    assert sum(line.startswith("refused: Strict mode") for line in lines) == 2
