"""asyncpg's prepared-statement cache across tenants whose tables differ in shape.

One pooled connection serves every tenant here (pool_size=1), so each statement prepared for one
tenant is reused for the next. PostgreSQL re-plans it for the new search_path, so rows always
come from the right tenant; when the result's shape differs it refuses ("cached plan must not
change result type", asyncpg's InvalidCachedStatementError). The door retries such a request
once, answers 503 with a clear message when it cannot, and never returns wrong rows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart, g, jsonify
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from flask_tenants.aio import QuartTenants, StaleStatementError, run_in_tenant, with_db

from .app import create_shared_tables, make_app
from .models import Tank


def add_star_routes(tenancy: QuartTenants, app: Quart) -> None:
    bp = tenancy.create_tenant_blueprint("star")

    @bp.route("/star")
    async def star() -> Any:
        rows = (await g.db_session.execute(text("SELECT * FROM tanks ORDER BY id"))).all()
        return jsonify({"tenant": g.tenant, "rows": [list(r) for r in rows]})

    @bp.route("/orm")
    async def orm() -> Any:
        tanks = (await g.db_session.execute(select(Tank).order_by(Tank.id))).scalars().all()
        return jsonify({"tenant": g.tenant, "rows": [[t.id, t.name] for t in tanks]})

    @bp.route("/commit-then-star", methods=["POST"])
    async def commit_then_star() -> Any:
        g.db_session.add(Tank(name=f"{g.tenant}-late"))
        await g.db_session.commit()
        rows = (await g.db_session.execute(text("SELECT * FROM tanks ORDER BY id"))).all()
        return jsonify({"tenant": g.tenant, "rows": [list(r) for r in rows]})

    app.register_blueprint(bp)


@pytest.fixture
async def shaped(fresh_db: str) -> AsyncIterator[tuple[Quart, QuartTenants, list[str]]]:
    """acme and globex on one pooled connection; globex's tanks has an extra column."""
    app, tenancy = make_app(fresh_db, TENANTS_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0})
    add_star_routes(tenancy, app)
    await create_shared_tables(tenancy, app)
    for name in ("acme", "globex"):
        await tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        async with tenancy.with_db(name) as s:
            s.add(Tank(name=f"{name}-1", capacity=1.5))
            await s.commit()
    async with tenancy.with_db("globex") as s:
        await s.execute(text("ALTER TABLE tanks ADD COLUMN extra text DEFAULT 'x'"))
        await s.commit()
    stale: list[str] = []

    def on_error(ctx: Any) -> None:
        if "InvalidCachedStatement" in type(ctx.original_exception).__name__:
            stale.append(ctx.statement)

    engine = tenancy.state_for(app).engine.sync_engine
    event.listen(engine, "handle_error", on_error)
    try:
        yield app, tenancy, stale
    finally:
        await tenancy.dispose()


def host(name: str) -> dict[str, str]:
    return {"Host": f"{name}.example.com"}


async def test_differently_shaped_tenants_are_retried_never_wrong(shaped: Any) -> None:
    app, tenancy, stale = shaped
    client = app.test_client()
    expected = {
        "acme": [[1, "acme-1", 1.5]],
        "globex": [[1, "globex-1", 1.5, "x"]],
    }
    for name in ["acme", "globex", "acme", "globex", "globex", "acme"]:
        r = await client.get("/star", headers=host(name))
        assert r.status_code == 200, await r.get_data()
        assert await r.get_json() == {"tenant": name, "rows": expected[name]}
    # the stale plans really happened (so the retry was exercised), each switch at most once
    assert len(stale) >= 2


async def test_explicit_columns_need_no_retry_and_stay_in_their_schema(shaped: Any) -> None:
    app, tenancy, stale = shaped
    client = app.test_client()
    for name in ["acme", "globex"] * 3:
        r = await client.get("/orm", headers=host(name))
        assert await r.get_json() == {"tenant": name, "rows": [[1, f"{name}-1"]]}
    assert stale == []  # same result shape: PostgreSQL re-plans silently, right rows


async def test_committed_request_is_not_retried_but_answers_503(
    shaped: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, tenancy, stale = shaped
    client = app.test_client()
    assert (await client.get("/star", headers=host("acme"))).status_code == 200
    with caplog.at_level(logging.WARNING, logger="flask_tenants"):
        r = await client.post("/commit-then-star", headers=host("globex"))
    assert r.status_code == 503
    assert b"went stale" in await r.get_data()
    assert "already committed" in caplog.text
    # retrying the request by hand now works: caches were cleared
    r = await client.get("/star", headers=host("globex"))
    assert r.status_code == 200


async def test_retry_can_be_switched_off(shaped: Any) -> None:
    app, tenancy, stale = shaped
    app.config["TENANTS_RETRY_STALE_STATEMENTS"] = False
    client = app.test_client()
    assert (await client.get("/star", headers=host("acme"))).status_code == 200
    assert (await client.get("/star", headers=host("globex"))).status_code == 503


async def test_stale_statement_error_is_an_http_error() -> None:
    err = StaleStatementError("acme")
    assert err.code == 503 and "Try again" in str(err)


async def test_run_in_tenant_retries_and_with_db_explains(shaped: Any) -> None:
    app, tenancy, stale = shaped

    async def star(session: AsyncSession) -> list[Any]:
        return [list(r) for r in (await session.execute(text("SELECT * FROM tanks")))]

    async with app.app_context():
        assert await run_in_tenant("acme", star) == [[1, "acme-1", 1.5]]
        assert await run_in_tenant("globex", star) == [[1, "globex-1", 1.5, "x"]]
        assert await tenancy.run_in_tenant("acme", star) == [[1, "acme-1", 1.5]]
        assert len(stale) >= 2
        with pytest.raises(Exception) as info:
            async with with_db("globex") as s:
                await star(s)
        assert "InvalidCachedStatement" in repr(info.value)
        if sys.version_info >= (3, 11):  # exception notes
            notes = "\n".join(getattr(info.value, "__notes__", []))
            assert "flask-tenants" in notes and "globex" in notes
