"""Tenants created through the library on a real Citus cluster are distributed schemas, spread
over both workers; their rows live on the worker the catalog names; shared tables they reference
became reference tables; rename and delete work on distributed schemas."""

from __future__ import annotations

from collections import Counter

import pytest

from flask_tenants import citus
from flask_tenants.context import _reset, _set

from .app import make_app, tenant_base
from .conftest import CitusDB

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def citus_db(shared_citus_db: CitusDB) -> CitusDB:
    """A database shared with other modules: the tenants here have names of their own."""
    return shared_citus_db


N_TENANTS = 8


def placements(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    engine = app.extensions["flask_tenants"].engine
    token = _set(None)
    try:
        with engine.connect() as c:
            return citus.tenant_placements(c)
    finally:
        _reset(token)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_tenants_are_distributed_over_both_workers(citus_db: CitusDB, driver: str) -> None:
    app, tenancy = make_app(citus_db.url_with(driver))
    names = [f"{driver}x{i}" for i in range(N_TENANTS)]
    for n in names:
        tenancy.create_tenant(n, domains=[f"{n}.example.com"])
    placed = {k: v for k, v in placements(app).items() if k in names}
    assert set(placed) == set(names)
    per_node = Counter(placed.values())
    assert set(per_node) == set(citus_db.workers), per_node  # both workers, not the coordinator
    # the shared table the tenant tables reference is a reference table now
    assert citus_db.sql(
        "SELECT partmethod, repmodel FROM pg_dist_partition WHERE logicalrelid = 'plans'::regclass"
    ) == [("n", "t")]
    # rows written through the door live in the shard on the worker the catalog names
    client = app.test_client()
    for n in names:
        for k in range(2):
            r = client.post("/items", json={"name": f"{n}-{k}", "plan": 2}, base_url=tenant_base(n))
            assert r.status_code == 201, r.get_data(as_text=True)
    for n in names:
        r = client.get("/items", base_url=tenant_base(n))
        assert r.json == {"tenant": n, "items": [f"{n}-0", f"{n}-1"]}
        assert client.get("/plan-names", base_url=tenant_base(n)).json == [
            [f"{n}-0", "plan-2"],
            [f"{n}-1", "plan-2"],
        ]
        shard, port = citus_db.sql(
            "SELECT shardid, nodeport FROM citus_shards WHERE table_name = CAST(:t AS regclass)",
            t=f"{n}.items",
        )[0]
        assert placed[n].endswith(f":{port}")
        on_worker = citus_db.sql(f"SELECT name FROM {n}.items_{shard} ORDER BY id", port=port)  # noqa: S608
        assert [r[0] for r in on_worker] == [f"{n}-0", f"{n}-1"]
        other = next(p for p in citus_db.cluster.ports[1:] if p != port)
        assert citus_db.sql("SELECT to_regclass(:t)", port=other, t=f"{n}.items_{shard}") == [
            (None,)
        ]


def test_foreign_keys_to_the_reference_table_are_enforced(citus_db: CitusDB) -> None:
    app, tenancy = make_app(citus_db.url_with("psycopg"))
    tenancy.create_tenant("acme")
    app.testing = False
    client = app.test_client()
    r = client.post("/items", json={"name": "x", "plan": 99}, base_url=tenant_base("acme"))
    assert r.status_code == 500  # ForeignKeyViolation raised by the worker
    assert app.test_client().get("/items", base_url=tenant_base("acme")).json["items"] == []


def test_rename_and_delete_distributed_schemas(citus_db: CitusDB) -> None:
    app, tenancy = make_app(citus_db.url_with("psycopg"))
    tenancy.create_tenant("old", domains=["old.example.com"])
    c = app.test_client()
    assert c.post("/items", json={"name": "kept"}, base_url=tenant_base("old")).status_code == 201
    node = placements(app)["old"]
    tenancy.rename_tenant("old", "new")
    assert "old" not in placements(app) and placements(app)["new"] == node
    assert c.get("/items", base_url="http://old.example.com").json["items"] == ["kept"]
    assert c.get("/items", base_url=tenant_base("new")).json["items"] == ["kept"]
    for port, schemas in citus_db.schemas_on_every_node().items():
        assert "old" not in schemas and "new" in schemas, port
    before = citus_db.sql("SELECT count(*) FROM pg_dist_partition")[0][0]
    tenancy.delete_tenant("new")
    assert "new" not in placements(app)
    for port, schemas in citus_db.schemas_on_every_node().items():
        assert "new" not in schemas, port
    # its two tables and their shards left the metadata
    assert citus_db.sql("SELECT count(*) FROM pg_dist_partition")[0][0] == before - 2


def test_citus_false_keeps_tenants_on_the_coordinator(citus_db: CitusDB) -> None:
    app, tenancy = make_app(citus_db.url_with("psycopg"), TENANTS_CITUS=False)
    tenancy.create_tenant("solo")
    assert "solo" not in placements(app)
    distributed = "SELECT count(*) FROM pg_dist_schema WHERE schemaid = 'solo'::regnamespace"
    assert citus_db.sql(distributed) == [(0,)]
    c = app.test_client()
    assert c.get("/items", base_url=tenant_base("solo")).json["items"] == []


def test_concurrent_creations_all_succeed(citus_db: CitusDB) -> None:
    """Creations serialize on the lock the foreign key to the reference table takes, but none
    fails or deadlocks."""
    import threading

    app, tenancy = make_app(citus_db.url_with("psycopg"))
    tenancy.create_tenant("conc_first")  # the reference table is made once, first
    names = [f"conc{i}" for i in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def create(name: str) -> None:
        try:
            start.wait(timeout=30)
            tenancy.create_tenant(name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    placed = placements(app)
    assert all(placed[n] in citus_db.workers for n in names)
    client = app.test_client()
    for n in names:
        assert client.post("/items", json={"name": n}, base_url=tenant_base(n)).status_code == 201
        assert client.get("/items", base_url=tenant_base(n)).json["items"] == [n]


def test_a_distributed_schema_dropped_behind_the_librarys_back_is_503(citus_db: CitusDB) -> None:
    """The transaction hook's to_regnamespace() check works on the coordinator: a tenant whose
    distributed schema was dropped by hand is refused, never served from public."""
    app, tenancy = make_app(citus_db.url_with("psycopg"))
    tenancy.create_tenant("gone")
    c = app.test_client()
    assert c.get("/items", base_url=tenant_base("gone")).status_code == 200
    citus_db.sql("DROP SCHEMA gone CASCADE")
    for port, schemas in citus_db.schemas_on_every_node().items():
        assert "gone" not in schemas, port
    app.testing = False
    assert c.get("/items", base_url=tenant_base("gone")).status_code == 503
