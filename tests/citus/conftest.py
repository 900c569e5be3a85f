"""A real Citus cluster (coordinator + 2 workers) for the tests of this package.

The session fixture starts one with ``../shared/citus/cluster.sh`` (the ``shared/`` directory
beside the repository) in a fresh temporary directory, on free ports, applies the
``citus.local_hostname`` fix (the cluster has no TCP: shard moves connect over the unix socket
directory) and stops it afterwards. Each test module gets a fresh database on it (``citus_db``),
with the ``citus`` extension on every node and both workers registered.

When the cluster cannot start, the tests are skipped with a reason saying how to run them; with
the environment variable ``CI`` set they fail instead, so that a broken install cannot pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "citus"
CLUSTER_SH = SHARED / "cluster.sh"
CITUS_SO = Path("/usr/lib/postgresql/15/lib/citus.so")
HOW_TO_RUN = (
    "To run the Citus tests: sudo bash ../shared/citus/install.sh (PostgreSQL 15 + Citus, from the "
    "directory above the repository), then python -m pytest tests/citus -q as root or as a user "
    "that can run /usr/lib/postgresql/15/bin/initdb."
)


def _unavailable(reason: str) -> None:
    message = f"Citus cluster unavailable: {reason}. {HOW_TO_RUN}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: failing instead of skipping)", pytrace=False)
    pytest.skip(message)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports() -> int:
    """A base port P such that P, P+1 and P+2 are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 2 < 65536 and all(_port_free(base + i) for i in range(3)):
            return base
    raise RuntimeError("no three consecutive free ports found")


def _url(sockdir: str, port: int, database: str = "postgres", driver: str | None = None) -> str:
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    return f"{scheme}://postgres@/{database}?host={sockdir}&port={port}"


@dataclass
class Cluster:
    """A running coordinator (``port``) and workers (``port + 1``, ``port + 2``)."""

    sockdir: str
    port: int

    @property
    def ports(self) -> list[int]:
        return [self.port, self.port + 1, self.port + 2]

    def url(self, database: str = "postgres", port: int | None = None, driver: str | None = None):  # type: ignore[no-untyped-def]
        return _url(self.sockdir, port or self.port, database, driver)

    def admin(self, port: int | None = None, database: str = "postgres") -> Engine:
        return create_engine(
            self.url(database, port, "psycopg"), isolation_level="AUTOCOMMIT", poolclass=_null()
        )

    def sql(self, sql: str, port: int | None = None, database: str = "postgres", **params):  # type: ignore[no-untyped-def]
        engine = self.admin(port, database)
        try:
            with engine.connect() as c:
                result = c.execute(text(sql), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()


def _null():  # type: ignore[no-untyped-def]
    from sqlalchemy.pool import NullPool

    return NullPool


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[Cluster]:
    if not CLUSTER_SH.is_file():
        _unavailable(f"{CLUSTER_SH} not found")
    if not CITUS_SO.is_file():
        _unavailable(f"{CITUS_SO} is not installed")
    sockdir = tempfile.mkdtemp(prefix="ftcitus-")
    port = _free_ports()
    started = False
    try:
        try:
            proc = subprocess.run(
                ["bash", str(CLUSTER_SH), "start", sockdir, str(port)],
                capture_output=True,
                text=True,
                timeout=180,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"cluster.sh start failed: {exc}")
        started = True
        if proc.returncode != 0:
            _unavailable(f"cluster.sh start exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        cluster = Cluster(sockdir, port)
        # No TCP: nodes reach each other (shard moves, database propagation) over the sockets.
        for p in cluster.ports:
            cluster.sql(f"ALTER SYSTEM SET citus.local_hostname TO '{sockdir}'", port=p)
            cluster.sql("SELECT pg_reload_conf()", port=p)
        yield cluster
    finally:
        if started:
            subprocess.run(
                ["bash", str(CLUSTER_SH), "stop", sockdir], capture_output=True, timeout=120
            )
        shutil.rmtree(sockdir, ignore_errors=True)


@dataclass
class CitusDB:
    """A fresh database on the cluster: ``url`` (coordinator, no driver), per-node URLs."""

    cluster: Cluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    def url_with(self, driver: str) -> str:
        return self.cluster.url(self.name, driver=driver)

    @property
    def nodes(self) -> list[str]:
        """``host:port`` of the coordinator and the two workers."""
        return [f"{self.cluster.sockdir}:{p}" for p in self.cluster.ports]

    @property
    def workers(self) -> list[str]:
        return self.nodes[1:]

    def sql(self, sql: str, port: int | None = None, **params):  # type: ignore[no-untyped-def]
        return self.cluster.sql(sql, port=port, database=self.name, **params)

    def schemas_on_every_node(self) -> dict[int, set[str]]:
        """Non-system schemas of each node's pg_namespace, read on that node directly."""
        q = (
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname NOT IN ('information_schema', 'public', 'citus', 'citus_internal', "
            "'columnar', 'columnar_internal')"
        )
        return {p: {r[0] for r in self.sql(q, port=p)} for p in self.cluster.ports}


def new_citus_database(cluster: Cluster) -> CitusDB:
    name = "c_" + uuid.uuid4().hex[:10]
    admin = cluster.admin()
    try:
        with admin.connect() as c:
            c.execute(text("SET citus.enable_create_database_propagation TO on"))
            c.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    for p in cluster.ports:
        cluster.sql("CREATE EXTENSION citus", port=p, database=name)
    d = cluster.sockdir
    cluster.sql(
        f"SELECT citus_set_coordinator_host('{d}', {cluster.port}), "
        f"citus_add_node('{d}', {cluster.port + 1}), citus_add_node('{d}', {cluster.port + 2})",
        database=name,
    )
    return CitusDB(cluster, name)


def drop_citus_database(db: CitusDB) -> None:
    """Drop ``db`` on every node (the connections nodes keep to each other are closed first)."""
    for attempt in range(5):
        for p in db.cluster.ports:
            db.cluster.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()",
                port=p,
                d=db.name,
            )
        admin = db.cluster.admin()
        try:
            with admin.connect() as c:
                c.execute(text("SET citus.enable_create_database_propagation TO on"))
                c.execute(text(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.5)
        finally:
            admin.dispose()


@pytest.fixture(scope="session")
def shared_citus_db(citus_cluster: Cluster) -> Iterator[CitusDB]:
    """One database for the modules whose tenants have names of their own and whose apps use
    the same models (tests/citus/models.py): each module's ``citus_db`` returns it."""
    db = new_citus_database(citus_cluster)
    try:
        yield db
    finally:
        drop_citus_database(db)


@pytest.fixture(scope="module")
def citus_db(citus_cluster: Cluster) -> Iterator[CitusDB]:
    """A new database on the cluster for the test module (making one takes seconds), dropped on
    every node afterwards; tests in a module use tenant names of their own."""
    db = new_citus_database(citus_cluster)
    try:
        yield db
    finally:
        drop_citus_database(db)


def driver_url(url: str, driver: str) -> str:
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)
