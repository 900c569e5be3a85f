"""Fixtures: a real PostgreSQL server (TENANTS_TEST_DATABASE_URL, else a throwaway embedded one)
and a fresh database per test."""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import Pool

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


def _create_database(admin_engine, server_url: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = "t_" + uuid.uuid4().hex[:12]
    with admin_engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_database(admin_engine, name: str) -> None:  # type: ignore[no-untyped-def]
    with admin_engine.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_db(pg_server_url: str, _admin_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL (no driver) of a new empty database, dropped after the test."""
    name, url = _create_database(_admin_engine, pg_server_url)
    yield url
    _drop_database(_admin_engine, name)


@pytest.fixture
def new_database(pg_server_url: str, _admin_engine) -> Iterator[Callable[..., str]]:  # type: ignore[no-untyped-def]
    """Factory of more fresh databases: ``new_database(driver=None)`` returns the URL of another
    empty database (with ``postgresql+<driver>`` when a driver is given); all dropped after."""
    names: list[str] = []

    def make(driver: str | None = None) -> str:
        name, url = _create_database(_admin_engine, pg_server_url)
        names.append(name)
        if driver is None:
            return url
        return (
            make_url(url)
            .set(drivername=f"postgresql+{driver}")
            .render_as_string(hide_password=False)
        )

    yield make
    for name in names:
        _drop_database(_admin_engine, name)


@pytest.fixture(scope="module", params=DRIVERS)
def module_db_url(
    request: pytest.FixtureRequest, pg_server_url: str, _admin_engine
) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh database (with driver, psycopg 3 and psycopg2) shared by the tests of a module:
    for tests that build one app and do not change what the others look at."""
    name, url = _create_database(_admin_engine, pg_server_url)
    yield (
        make_url(url)
        .set(drivername=f"postgresql+{request.param}")
        .render_as_string(hide_password=False)
    )
    _drop_database(_admin_engine, name)


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


@pytest.fixture
def dispose_engines() -> Iterator[None]:
    """Close the pooled connections of every engine used during the test when it ends, so that
    apps built by the test do not leave open connections to be garbage-collected later (a
    ResourceWarning, an error under filterwarnings=error)."""
    pools: weakref.WeakSet[Pool] = weakref.WeakSet()

    def track(conn: Connection) -> None:
        pools.add(conn.engine.pool)

    event.listen(Engine, "engine_connect", track)
    try:
        yield
    finally:
        event.remove(Engine, "engine_connect", track)
        for pool in list(pools):
            pool.dispose()


def full_size() -> bool:
    return os.environ.get("TENANTS_FULL", "") not in ("", "0")
