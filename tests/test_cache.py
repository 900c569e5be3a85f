"""The resolution cache: a hit costs no statement; changes made through this process apply at
once; changes made by another process apply within TENANTS_CACHE_TTL; misses are cached; the
cache is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, g, jsonify

from tests.sample_app import (
    PUBLIC_URL,
    Tenant,
    db,
    engine_of,
    make_app_with,
    recorded_statements,
    tenancy_of,
    tenant_url,
)

pytestmark = pytest.mark.usefixtures("dispose_engines")

REPO = Path(__file__).resolve().parents[1]

cache_bp = Blueprint("cache_probe", __name__)
cache_public_bp = Blueprint("cache_public", __name__)


@cache_bp.route("/whoami")
def whoami():  # type: ignore[no-untyped-def]
    return jsonify({"tenant": g.tenant})  # no database work of its own


@cache_public_bp.route("/bulk-deactivate/<name>", methods=["POST"])
def bulk_deactivate(name: str):  # type: ignore[no-untyped-def]
    # a bulk UPDATE through the ORM (no mapper events fire for it)
    Tenant.query.filter_by(name=name).update({"deactivated": True})
    db.session.commit()
    return jsonify({})


@cache_public_bp.route("/orm-deactivate/<name>", methods=["POST"])
def orm_deactivate(name: str):  # type: ignore[no-untyped-def]
    Tenant.query.filter_by(name=name).one().deactivated = True
    db.session.commit()
    return jsonify({})


def build(url: str, **config: Any) -> Flask:
    app = make_app_with(
        url, tenant_blueprints=[cache_bp], public_blueprints=[cache_public_bp], **config
    )
    for name in ("acme", "globex"):
        tenancy_of(app).create_tenant(name)  # reached by the sub-domain fallback
    return app


def status(app: Flask, name: str) -> tuple[int, int]:
    """(HTTP status of /whoami on ``name``'s host, statements that request sent)."""
    with recorded_statements(engine_of(app)) as statements:
        r = app.test_client().get("/whoami", base_url=tenant_url(name))
    if r.status_code == 200:
        assert r.json == {"tenant": name}
    return r.status_code, len(statements)


def test_a_cache_hit_sends_no_statement(fresh_db: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=60)
    assert status(app, "acme") == (200, 1)  # the lookup
    assert status(app, "acme") == (200, 0)
    assert status(app, "globex") == (200, 1)
    assert status(app, "nobody") == (404, 1)  # a miss is cached too
    assert status(app, "nobody") == (404, 0)
    with recorded_statements(engine_of(app)) as statements:  # public hosts need no lookup
        assert app.test_client().get("/", base_url=PUBLIC_URL).status_code == 200
    assert statements == []


def test_without_a_ttl_every_request_looks_up(fresh_db: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=0)
    assert [status(app, "acme") for _ in range(3)] == [(200, 1)] * 3


def test_changes_through_this_process_apply_at_once(fresh_db: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=3600)
    tenancy = tenancy_of(app)
    c = app.test_client()
    for name in ("acme", "globex", "initech", "hooli"):
        status(app, name)  # cache every answer, hits and misses

    tenancy.deactivate_tenant("acme")
    assert status(app, "acme")[0] == 403
    tenancy.activate_tenant("acme")
    assert status(app, "acme")[0] == 200
    c.post("/orm-deactivate/acme", base_url=PUBLIC_URL)
    assert status(app, "acme")[0] == 403
    tenancy.activate_tenant("acme")
    assert status(app, "acme")[0] == 200  # cached again
    c.post("/bulk-deactivate/acme", base_url=PUBLIC_URL)
    assert status(app, "acme")[0] == 403

    tenancy.create_tenant("initech")  # was a cached miss
    assert status(app, "initech")[0] == 200
    tenancy.rename_tenant("initech", "hooli")  # hooli was a cached miss
    assert status(app, "hooli")[0] == 200
    assert status(app, "initech")[0] == 404
    tenancy.add_domain("globex", "globex.test.io")
    r = c.get("/whoami", base_url="http://globex.test.io")
    assert r.json == {"tenant": "globex"}
    tenancy.delete_tenant("globex")
    assert status(app, "globex")[0] == 404
    assert c.get("/whoami", base_url="http://globex.test.io").status_code == 404


def test_the_cache_is_bounded(fresh_db: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_SIZE=50, TENANTS_CACHE_TTL=3600)
    resolver = app.extensions["flask_tenants"].resolver
    for i in range(150):
        assert status(app, f"random{i}")[0] == 404
        assert len(resolver._cache) <= 50
    assert status(app, "acme")[0] == 200


# -- another process -----------------------------------------------------------------------------

WORKER = """
import sys
from tests.sample_app import make_app, tenancy_of

tenancy = tenancy_of(make_app(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    command, name = line.split()
    getattr(tenancy, command)(name)
    print("done", flush=True)
"""


@pytest.fixture
def other_process(fresh_db: str) -> Iterator[Any]:
    """Another process with the same app and database: ``send(command, name)`` runs a tenancy
    method there and returns when it has committed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, fresh_db],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(command: str, name: str) -> float:
        proc.stdin.write(f"{command} {name}\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        assert proc.stdout.readline().strip() == "done"  # type: ignore[union-attr]
        return time.monotonic()

    try:
        assert proc.stdout.readline().strip() == "ready"
        yield send
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def poll(app: Flask, name: str, until: float) -> list[tuple[float, float, int]]:
    """Requests to ``name``'s host until ``until``: (start, end, status) of each."""
    seen = []
    while True:
        start = time.monotonic()
        code, _ = status(app, name)
        seen.append((start, time.monotonic(), code))
        if start > until:
            return seen
        time.sleep(0.01)


TTL = 0.5


def test_changes_by_another_process_apply_within_the_ttl(fresh_db: str, other_process: Any) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=TTL)
    steps = [
        ("deactivate_tenant", "acme", 200, 403),
        ("activate_tenant", "acme", 403, 200),
        ("delete_tenant", "globex", 200, 404),
        ("create_tenant", "initech", 404, 200),
    ]
    stale_seen = 0
    resolver = app.extensions["flask_tenants"].resolver
    for command, name, before, after in steps:
        resolver.invalidate()  # start each step from a fresh lookup
        t0 = time.monotonic()
        assert status(app, name) == (before, 1)  # looked up and cached (expires >= t0 + TTL)
        t1 = time.monotonic()  # ... and expires <= t1 + TTL
        done = other_process(command, name)
        fresh_from = max(done, t1 + TTL)
        polls = poll(app, name, until=fresh_from + 0.2)
        # answered before the entry can have expired: the cached answer (the cache is used)
        early = [code for start, end, code in polls if end < t0 + TTL]
        assert set(early) <= {before}, (command, polls)
        stale_seen += len(early)
        # asked after the entry expired and the other process committed: the new answer
        late = [code for start, end, code in polls if start > fresh_from]
        assert late and set(late) == {after}, (command, polls)
    print(f"answers served stale from the cache during the TTL: {stale_seen}")
