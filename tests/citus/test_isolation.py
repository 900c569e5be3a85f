"""The isolation checks of both doors, run unchanged on the Citus cluster: concurrent requests
over several tenants (now distributed schemas on two workers, routed by the library's
transaction-scoped search_path) each see only their own rows, and no pooled connection keeps a
tenant's search_path. The harnesses are the ones of tests/test_isolation.py (threads, Flask) and
tests/aio/test_isolation_concurrency.py (asyncio tasks, Quart: test_isolation_async.py), which
include a control run showing that they detect leaks."""

from __future__ import annotations

from collections import Counter

import pytest

from flask_tenants import citus
from tests.sample_app import engine_of
from tests.test_isolation import (
    POOL_SIZE,
    THREADS,
    build_app,
    pooled_search_paths,
    quiet_app_logger,  # noqa: F401 - fixture
    run_harness,
    schema_contents_are_their_own,
)

from .conftest import CitusDB

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.mark.usefixtures("quiet_app_logger")
def test_sync_door_no_request_sees_another_tenants_rows(citus_db: CitusDB) -> None:
    app = build_app(citus_db.url_with("psycopg"))  # seeds t00..t09 through the library
    with engine_of(app).connect() as c:
        placed = citus.tenant_placements(c)
    assert set(Counter(placed[f"t{i:02d}"] for i in range(10))) == set(citus_db.workers)
    per_thread = 25
    report = run_harness(app, per_thread, seed=3)
    assert not report.worker_errors, report.worker_errors
    assert report.requests == THREADS * per_thread
    assert report.unexpected_status == []
    assert report.wrong_rows == 0
    assert schema_contents_are_their_own(app) == 0
    assert engine_of(app).pool.checkedout() == 0
    assert pooled_search_paths(app) == ['"$user", public'] * POOL_SIZE
