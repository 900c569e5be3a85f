"""Turning Citus on for an existing fleet: tenants made as plain schemas on the coordinator
(TENANTS_CITUS = False, or before the extension existed) are distributed by ``flask tenants citus
setup`` with their rows, and keep being served; ``flask tenants list`` and ``flask tenants citus
nodes`` show each tenant's node."""

from __future__ import annotations

from collections import Counter

import pytest

from flask_tenants import citus

from .app import make_app, tenant_base
from .conftest import CitusDB

pytestmark = pytest.mark.usefixtures("dispose_engines")

NAMES = [f"old{i}" for i in range(6)]


def test_setup_distributes_an_existing_fleet_and_the_cli_shows_nodes(citus_db: CitusDB) -> None:
    # the fleet as it was before Citus: plain schemas on the coordinator, with rows
    app, tenancy = make_app(citus_db.url_with("psycopg"), TENANTS_CITUS=False)
    client = app.test_client()
    for n in NAMES:
        tenancy.create_tenant(n, domains=[f"{n}.example.com"])
        for k in range(3):
            r = client.post("/items", json={"name": f"{n}-{k}"}, base_url=tenant_base(n))
            assert r.status_code == 201
    engine = app.extensions["flask_tenants"].engine
    with engine.connect() as c:
        assert citus.tenant_placements(c) == {}
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["tenants", "list"])
    assert listed.exit_code == 0, listed.output
    assert "NODE" not in listed.output  # nothing distributed: the column is left out

    result = runner.invoke(args=["tenants", "citus", "setup"])
    assert result.exit_code == 0, result.output
    assert "Reference tables made now: plans." in result.output
    assert f"Tenants distributed now: {len(NAMES)}." in result.output
    with engine.connect() as c:
        placed = citus.tenant_placements(c)
    assert set(placed) == set(NAMES)
    assert set(Counter(placed.values())) == set(citus_db.workers)
    # rows moved with the schemas, and the door serves them from the workers
    for n in NAMES:
        assert client.get("/items", base_url=tenant_base(n)).json["items"] == [
            f"{n}-{k}" for k in range(3)
        ]
        assert (
            client.post("/items", json={"name": "new"}, base_url=tenant_base(n)).status_code == 201
        )

    again = runner.invoke(args=["tenants", "citus", "setup"])
    assert again.exit_code == 0 and "Tenants distributed now: 0." in again.output

    listed = runner.invoke(args=["tenants", "list"])
    assert listed.exit_code == 0, listed.output
    assert "NODE" in listed.output
    for n in NAMES:
        line = next(ln for ln in listed.output.splitlines() if ln.startswith(n + " "))
        assert placed[n] in line
    js = runner.invoke(args=["tenants", "list", "--json"])
    assert '"node": "' + placed[NAMES[0]] + '"' in js.output

    nodes = runner.invoke(args=["tenants", "citus", "nodes"])
    assert nodes.exit_code == 0, nodes.output
    for n in NAMES:
        assert f"{n}\t{placed[n]}" in nodes.output
    for w in citus_db.workers:
        assert f"# {w}: " in nodes.output

    # a move by the CLI
    dst = next(w for w in citus_db.workers if w != placed["old0"])
    moved = runner.invoke(args=["tenants", "citus", "move", "old0", dst, "--mode", "block_writes"])
    assert moved.exit_code == 0, moved.output
    with engine.connect() as c:
        assert citus.tenant_node(c, "old0") == dst
    assert client.get("/items", base_url=tenant_base("old0")).json["items"][:3] == [
        "old0-0",
        "old0-1",
        "old0-2",
    ]
    orphans = runner.invoke(args=["tenants", "citus", "orphans"])
    assert orphans.exit_code == 0 and "No orphan schemas." in orphans.output
