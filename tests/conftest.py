"""Fixtures: a real PostgreSQL server (TENANTS_TEST_DATABASE_URL, else a throwaway embedded one)
and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flask_tenants.testing.server import start_embedded_postgres, test_database_url

DRIVERS = ["psycopg", "psycopg2"]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = test_database_url()
    if url:
        yield url
        return
    handle = start_embedded_postgres()
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def _admin_engine(pg_server_url: str):  # type: ignore[no-untyped-def]
    url = make_url(pg_server_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_db(pg_server_url: str, _admin_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL (no driver) of a new empty database, dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    with _admin_engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    with _admin_engine.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(fresh_db: str, driver: str) -> str:
    """A fresh database's URL with an explicit driver (psycopg 3 and psycopg2)."""
    return (
        make_url(fresh_db)
        .set(drivername=f"postgresql+{driver}")
        .render_as_string(hide_password=False)
    )


def full_size() -> bool:
    return os.environ.get("TENANTS_FULL", "") not in ("", "0")
