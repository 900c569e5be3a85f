"""Placement: each tenant's node, moving a tenant to another node while the Flask door keeps
reading and writing it (every read returns exactly the rows written so far, no request fails), and
Citus's rebalancer evening out a lopsided cluster (TENANTS_FULL=1: it takes ~15 s)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from flask_tenants import citus
from tests.conftest import full_size

from .app import make_app, tenant_base
from .conftest import CitusDB

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def citus_db(shared_citus_db: CitusDB) -> CitusDB:
    """A database shared with other modules: the tenants here have names of their own."""
    return shared_citus_db


@pytest.fixture(scope="module")
def app_and_tenancy(citus_db: CitusDB) -> Any:
    app, tenancy = make_app(
        citus_db.url_with("psycopg"), TENANTS_ENGINE_OPTIONS={"pool_size": 4, "max_overflow": 0}
    )
    for n in ("mv0", "mv1", "mv2", "mv3"):
        tenancy.create_tenant(n)
    return app, tenancy


def placements(app: Any) -> dict[str, str]:
    with app.extensions["flask_tenants"].engine.connect() as c:
        return citus.tenant_placements(c)


class Traffic:
    """Two threads through the Flask door: one writes then reads ``tenant`` (checking that the
    read returns exactly what was written so far), one reads ``other``."""

    def __init__(self, app: Any, tenant: str, other: str) -> None:
        self.app, self.tenant, self.other = app, tenant, other
        self.stop = threading.Event()
        self.written: list[str] = []
        self.problems: list[str] = []
        self.reads = 0
        self.other_reads = 0
        self.threads = [
            threading.Thread(target=self._writer),
            threading.Thread(target=self._reader),
        ]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _writer(self) -> None:
        c = self.app.test_client()
        base = tenant_base(self.tenant)
        k = 0
        while not self.stop.is_set():
            name = f"{self.tenant}-w{k}"
            r = c.post("/items", json={"name": name}, base_url=base)
            if r.status_code != 201:
                self.problems.append(f"write {k}: {r.status_code} {r.get_data(as_text=True)}")
                return
            self.written.append(name)
            r = c.get("/items", base_url=base)
            if r.status_code != 200 or r.json["items"][-len(self.written) :] != self.written:
                self.problems.append(f"read after write {k}: {r.status_code}")
                return
            self.reads += 1
            k += 1

    def _reader(self) -> None:
        c = self.app.test_client()
        while not self.stop.is_set():
            r = c.get("/items", base_url=tenant_base(self.other))
            if r.status_code != 200 or any(
                not n.startswith(self.other + "-") for n in r.json["items"]
            ):
                self.problems.append(f"other tenant: {r.status_code} {r.get_data(as_text=True)}")
                return
            self.other_reads += 1


@pytest.mark.parametrize("mode", ["auto", "block_writes"])
def test_a_tenant_moves_while_the_door_serves_it(
    citus_db: CitusDB, app_and_tenancy: Any, mode: str
) -> None:
    app, tenancy = app_and_tenancy
    st = app.extensions["flask_tenants"]
    before = placements(app)
    src = before["mv0"]
    dst = next(w for w in citus_db.workers if w != src)
    with Traffic(app, "mv0", "mv1") as traffic:
        time.sleep(0.3)
        writes_before = len(traffic.written)
        t0 = time.perf_counter()
        assert citus.move_tenant(st.engine, "mv0", dst, mode=mode) == src
        took = time.perf_counter() - t0
        during = len(traffic.written) - writes_before
        time.sleep(0.3)
    print(f"\nmove ({mode}) took {took:.2f}s; {during} writes+reads during it")
    assert traffic.problems == []
    assert traffic.reads > 5 and traffic.other_reads > 5
    after = placements(app)
    assert after["mv0"] == dst
    assert {k: v for k, v in after.items() if k != "mv0"} == {
        k: v for k, v in before.items() if k != "mv0"
    }
    # the rows are on the new node, all of them
    shard, port = citus_db.sql(
        "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'mv0.items'::regclass"
    )[0]
    assert dst.endswith(f":{port}")
    rows = citus_db.sql(f"SELECT name FROM mv0.items_{shard} ORDER BY id", port=port)  # noqa: S608
    assert [r[0] for r in rows][-len(traffic.written) :] == traffic.written
    # and the library serves them from there
    got = app.test_client().get("/items", base_url=tenant_base("mv0")).json["items"]
    assert got[-len(traffic.written) :] == traffic.written


def test_moving_to_the_same_node_or_an_unknown_tenant(
    citus_db: CitusDB, app_and_tenancy: Any
) -> None:
    app, tenancy = app_and_tenancy
    st = app.extensions["flask_tenants"]
    node = placements(app)["mv2"]
    assert citus.move_tenant(st.engine, "mv2", node) == node
    with pytest.raises(citus.CitusError, match="no distributed tables"):
        citus.move_tenant(st.engine, "nosuch", node)
    with pytest.raises(Exception, match="host:port"):
        citus.move_tenant(st.engine, "mv2", "nowhere")


@pytest.mark.skipif(not full_size(), reason="the rebalancer takes ~15 s: TENANTS_FULL=1")
def test_rebalance_evens_out_a_lopsided_cluster(citus_db: CitusDB, app_and_tenancy: Any) -> None:
    app, tenancy = app_and_tenancy
    st = app.extensions["flask_tenants"]
    target = citus_db.workers[0]
    for name, node in placements(app).items():
        if node != target:
            citus.move_tenant(st.engine, name, target, mode="block_writes")
    assert set(placements(app).values()) == {target}
    citus.rebalance(st.engine)
    per_node = Counter(placements(app).values())
    assert set(per_node) == set(citus_db.workers), per_node
    c = app.test_client()
    for name in placements(app):
        assert c.get("/items", base_url=tenant_base(name)).status_code == 200
