"""What the atomicity tests compare: the state of every node, read on that node directly."""

from __future__ import annotations

from typing import Any

from .conftest import CitusDB

_PER_NODE = """
SELECT (SELECT count(*) FROM pg_dist_partition),
       (SELECT count(*) FROM pg_dist_schema),
       (SELECT count(*) FROM pg_prepared_xacts),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
           AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind = 'r')
"""


def node_state(db: CitusDB) -> dict[int, tuple[Any, ...]]:
    """Per node: its schemas, then the counts of distributed tables, distributed schemas,
    prepared transactions and ordinary tables (shards included: they are visible to a
    connection whose application_name is not Citus's own)."""
    schemas = db.schemas_on_every_node()
    return {
        port: (sorted(schemas[port]), *db.sql(_PER_NODE, port=port)[0]) for port in db.cluster.ports
    }


def assert_no_trace(db: CitusDB, name: str, before: dict[int, tuple[Any, ...]]) -> None:
    """Tenant ``name`` left nothing on any node: no row, no schema, no shard, no metadata."""
    assert db.sql("SELECT count(*) FROM tenants WHERE name = :n", n=name) == [(0,)]
    after = node_state(db)
    for port, state in after.items():
        assert name not in state[0], f"schema {name} left on node {port}"
    assert after == before
