"""The resolution cache: a hit costs no statement; changes made through this process apply at
once; changes made by another process (or by raw SQL) apply within TENANTS_CACHE_TTL, in both
validation modes (one fingerprint query per TTL, or one lookup per host per TTL); misses are
cached; the cache is bounded."""

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
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

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


@pytest.mark.parametrize("validation", ["fingerprint", "ttl"])
def test_a_cache_hit_sends_no_statement(fresh_db: str, validation: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=60, TENANTS_CACHE_VALIDATION=validation)
    # the first request also checks the fingerprint (once per TTL) in that mode
    assert status(app, "acme") == (200, 2 if validation == "fingerprint" else 1)
    assert status(app, "acme") == (200, 0)
    assert status(app, "globex") == (200, 1)
    assert status(app, "nobody") == (404, 1)  # a miss is cached too
    assert status(app, "nobody") == (404, 0)
    with recorded_statements(engine_of(app)) as statements:  # public hosts need no lookup
        assert app.test_client().get("/", base_url=PUBLIC_URL).status_code == 200
    assert statements == []


def test_one_fingerprint_query_per_ttl_whatever_the_number_of_hosts(fresh_db: str) -> None:
    ttl = 0.3
    app = build(fresh_db, TENANTS_CACHE_TTL=ttl)
    hosts = ["acme", "globex"] + [f"nobody{i}" for i in range(40)]
    for name in hosts:
        status(app, name)  # every answer cached
    time.sleep(ttl + 0.05)  # every entry would have expired with TENANTS_CACHE_VALIDATION='ttl'
    counts = [status(app, name)[1] for name in hosts]
    assert counts[0] == 1 and sum(counts) == 1, counts  # the check, then the cache


def test_a_change_made_with_raw_sql_is_seen_within_the_ttl(fresh_db: str) -> None:
    ttl = 0.3
    app = build(fresh_db, TENANTS_CACHE_TTL=ttl)
    assert status(app, "acme")[0] == 200 and status(app, "acme")[1] == 0  # cached
    other = create_engine(make_url(fresh_db).set(drivername="postgresql+psycopg"))
    try:
        with other.begin() as conn:  # not through the library: nothing invalidates the cache
            conn.execute(text("UPDATE tenants SET deactivated = true WHERE name = 'acme'"))
        changed = time.monotonic()
        codes = []
        while time.monotonic() < changed + ttl + 0.2:
            codes.append((time.monotonic() - changed, status(app, "acme")[0]))
            time.sleep(0.01)
        assert [c for t, c in codes if t > ttl] and {c for t, c in codes if t > ttl} == {403}
        assert codes[0][1] == 200  # served from the cache until the next check
        with other.begin() as conn:  # a domain added by raw SQL: a cached miss turns into a hit
            assert status(app, "globex")[0] == 200
            assert app.test_client().get("/whoami", base_url="http://g.test.io").status_code == 404
            conn.execute(
                text(
                    "INSERT INTO domains (domain_name, tenant_name, tenant_id, is_primary) "
                    "SELECT 'g.test.io', name, id, false FROM tenants WHERE name = 'globex'"
                )
            )
        time.sleep(ttl + 0.05)
        r = app.test_client().get("/whoami", base_url="http://g.test.io")
        assert r.status_code == 200 and r.json == {"tenant": "globex"}
    finally:
        other.dispose()


def test_a_lookup_that_raced_a_change_is_not_cached(fresh_db: str) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=3600)
    resolver = app.extensions["flask_tenants"].resolver
    res, host = resolver.begin("acme.example.com")
    assert res is None and host == "acme.example.com"
    generation = resolver.generation
    resolver.checked(("another", "fingerprint"))  # a check saw a change while the lookup ran
    resolver.finish(host, ("acme", False), "acme.example.com", generation)
    assert resolver.cached(host) is None  # answered, not kept
    resolver.finish(host, ("acme", False), "acme.example.com", resolver.generation)
    assert resolver.cached(host) is not None


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
    # Core DML on the app's engine, no session: noticed too, at commit (not before, not on rollback)
    assert status(app, "hooli")[0] == 200
    tenants = Tenant.__table__
    with engine_of(app).connect() as conn:
        conn.execute(update(tenants).where(tenants.c.name == "hooli").values(deactivated=True))
        assert status(app, "hooli")[0] == 200  # not committed: the cached answer stands
        conn.rollback()
    assert status(app, "hooli") == (200, 0)  # rolled back: still cached
    with engine_of(app).begin() as conn:
        conn.execute(update(tenants).where(tenants.c.name == "hooli").values(deactivated=True))
    assert status(app, "hooli")[0] == 403


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


def poll(app: Flask, name: str, until: float) -> list[tuple[float, float, int, int]]:
    """Requests to ``name``'s host until ``until``: (start, end, status, statements) of each."""
    seen = []
    while True:
        start = time.monotonic()
        code, sent = status(app, name)
        seen.append((start, time.monotonic(), code, sent))
        if start > until:
            return seen
        time.sleep(0.01)


TTL = 0.5


@pytest.mark.parametrize("validation", ["fingerprint", "ttl"])
def test_changes_by_another_process_apply_within_the_ttl(
    fresh_db: str, other_process: Any, validation: str
) -> None:
    app = build(fresh_db, TENANTS_CACHE_TTL=TTL, TENANTS_CACHE_VALIDATION=validation)
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
        code, sent = status(app, name)  # looked up (and the fingerprint checked, when due)
        assert code == before and sent >= 1
        t1 = time.monotonic()  # cached: expires, or is next checked, by t1 + TTL
        done = other_process(command, name)
        fresh_from = max(done, t1 + TTL)
        polls = poll(app, name, until=fresh_from + 0.2)
        if validation == "ttl":
            # answered before the entry can have expired: the cached answer (the cache is used)
            early = [code for start, end, code, _ in polls if end < t0 + TTL]
            assert set(early) <= {before}, (command, polls)
            stale_seen += len(early)
        else:
            # the cache is used: a fingerprint check (and a lookup after a change) at most once
            # per TTL, every other answer from memory
            span = polls[-1][1] - polls[0][0]
            with_statements = sum(1 for *_, sent in polls if sent)
            assert with_statements <= 2 * (span / TTL + 1), (command, polls)
            assert len(polls) > 3 * with_statements, (command, polls)
        # asked after the entry expired and the other process committed: the new answer
        late = [code for start, end, code, _ in polls if start > fresh_from]
        assert late and set(late) == {after}, (command, polls)
    print(f"answers served stale from the cache during the TTL: {stale_seen}")


def test_concurrent_requests_keep_their_tenant_while_the_cache_is_checked_and_emptied(
    fresh_db: str,
) -> None:
    """Threads ask many hosts while the fingerprint is checked all the time (tiny TTL) and keeps
    changing (raw SQL adds and removes a domain of another tenant), so the cache is emptied while
    lookups are in flight: every answer must still name the host's own tenant."""
    import threading

    app = build(fresh_db, TENANTS_CACHE_TTL=0.005)
    names = ["acme", "globex"]
    for i in range(6):
        tenancy_of(app).create_tenant(f"extra{i}")
        names.append(f"extra{i}")
    other = create_engine(make_url(fresh_db).set(drivername="postgresql+psycopg"))
    stop = threading.Event()
    wrong: list[tuple[str, Any]] = []
    answered = [0]

    def churn() -> None:
        k = 0
        while not stop.is_set():
            with other.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO domains (domain_name, tenant_name, tenant_id, is_primary) "
                        "SELECT :d, name, id, false FROM tenants WHERE name = 'extra0'"
                    ),
                    {"d": f"churn{k}.test.io"},
                )
            with other.begin() as conn:
                conn.execute(text("DELETE FROM domains WHERE domain_name LIKE 'churn%'"))
            k += 1

    def ask(seed: int) -> None:
        client = app.test_client()
        for j in range(60):
            name = names[(seed + j) % len(names)]
            r = client.get("/whoami", base_url=tenant_url(name))
            if r.status_code != 200 or r.json != {"tenant": name}:
                wrong.append((name, (r.status_code, r.get_data(as_text=True)[:100])))
            answered[0] += 1

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        workers = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        churner.join()
        other.dispose()
    assert answered[0] == 360 and wrong == [], wrong[:5]
    assert app.extensions["flask_tenants"].resolver.generation > 3  # the cache was emptied
