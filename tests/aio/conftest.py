"""Fixtures of the async door's tests: a Quart app on a fresh database (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart

from flask_tenants.aio import QuartTenants

from .app import create_shared_tables, make_app


@pytest.fixture
async def quart_app(fresh_db: str) -> AsyncIterator[tuple[Quart, QuartTenants]]:
    """A Quart app on a fresh database with the shared tables created (no tenants)."""
    app, tenancy = make_app(fresh_db)
    await create_shared_tables(tenancy, app)
    try:
        yield app, tenancy
    finally:
        await tenancy.dispose()


@pytest.fixture
def client(quart_app: tuple[Quart, QuartTenants]) -> Any:
    return quart_app[0].test_client()
