"""Citus benchmark: the same tenant endpoint on one plain PostgreSQL and on a Citus cluster.

    python benchmarks/citus_bench.py            # ~2 min
    python benchmarks/citus_bench.py --smoke    # < 40 s, for CI: the script cannot rot

Three contestants serve the same Flask app (flask-tenants, psycopg 3, Flask test client, one
thread): ``GET /items`` lists 10 of a tenant's 100 rows, requests spread round-robin over the
tenants.

* ``plain-18``: the embedded PostgreSQL 18 the test suite uses;
* ``plain-15``: PostgreSQL 15 from the same binaries as the cluster, without Citus (the fair
  baseline: same version, same build);
* ``citus``: coordinator + 2 workers (``../shared/citus/cluster.sh``), every tenant a distributed
  schema (``TENANTS_CITUS`` 'auto' finds the extension).

All three run on this machine over unix sockets with ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off. Reported: requests per second in interleaved rounds and the median of
the per-round ratios (the machine is shared and noisy: trust ratios, not absolute numbers);
statements per request, counted exactly -- sent by the app to the server it talks to, and, on
Citus, commands the coordinator sends to the workers (``citus.log_remote_commands`` on a counting
connection); and tenant provisioning time (``create_tenant``: schema + tables, on Citus also the
distribution; the first tenant on Citus also makes the reference table).

Needs root (or the ``postgres`` OS user) and ``sudo bash ../shared/citus/install.sh`` once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify
from sqlalchemy import ForeignKey, Integer, String, create_engine, event, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from flask_tenants import FlaskTenants, with_db
from flask_tenants.models import DomainMixin, TenantMixin, TenantModelMixin

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "citus"
PG15 = Path("/usr/lib/postgresql/15/bin")
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the app --------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Tenant(TenantMixin, Base):
    __tablename__ = "tenants"


class Domain(DomainMixin, Base):
    __tablename__ = "domains"


class Plan(Base):
    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Item(TenantModelMixin, Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))


SHARED_TABLES = [Tenant.__table__, Domain.__table__, Plan.__table__]


def make_app(url: str) -> tuple[Flask, FlaskTenants]:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as c:
        Base.metadata.create_all(c, tables=SHARED_TABLES)
        if not c.execute(select(Plan.id)).first():
            c.execute(insert(Plan), [{"id": 1, "name": "basic"}, {"id": 2, "name": "pro"}])
    engine.dispose()
    app = Flask(__name__)
    app.config["TENANTS_DATABASE_URL"] = url
    app.config["TENANTS_ENGINE_OPTIONS"] = {"pool_size": 2}
    tenancy = FlaskTenants(app, tenant_model=Tenant, domain_model=Domain, db=Base).init()
    bp = tenancy.create_tenant_blueprint("t")

    @bp.route("/items")
    def items() -> Any:
        rows = g.db_session.scalars(select(Item.name).order_by(Item.id).limit(10)).all()
        return jsonify({"tenant": g.tenant, "items": rows})

    app.register_blueprint(bp)
    return app, tenancy


# -- servers --------------------------------------------------------------------------------------


def free_base_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 2 < 65536:
            return base
    raise RuntimeError("no free port")


def as_postgres(cmd: str) -> None:
    full = (
        ["su", "postgres", "-s", "/bin/sh", "-c", cmd] if os.geteuid() == 0 else ["sh", "-c", cmd]
    )
    subprocess.run(full, check=True, capture_output=True, text=True)


def socket_url(sockdir: str, port: int, driver: str = "psycopg", db: str = "postgres") -> str:
    return f"postgresql+{driver}://postgres@/{db}?host={sockdir}&port={port}"


def admin_sql(url: str, *statements: str) -> list[Any]:
    eng = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    out: list[Any] = []
    try:
        with eng.connect() as c:
            for s in statements:
                r = c.execute(text(s))
                out.append(r.all() if r.returns_rows else None)
    finally:
        eng.dispose()
    return out


@dataclass
class Server:
    name: str
    url: str
    stop: Callable[[], None]
    worker_urls: list[str] = field(default_factory=list)


def start_embedded() -> Server:
    from flask_tenants.testing.server import start_embedded_postgres

    h = start_embedded_postgres()
    url = socket_url(str(h.datadir.parent), h.port)
    return Server("plain-18", url, h.stop)


def start_pg15(workdir: Path) -> Server:
    d = workdir / "pg15"
    d.mkdir()
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    port = free_base_port()
    as_postgres(f"{PG15}/initdb -D {d}/data -A trust -U postgres >/dev/null")
    conf = "".join(f"{k} = {v}\n" for k, v in FAST.items())
    as_postgres(f"printf '{conf}' >> {d}/data/postgresql.conf")
    as_postgres(
        f"{PG15}/pg_ctl -D {d}/data -o '-p {port} -k {d} -c listen_addresses=' "
        f"-l {d}/log -w start >/dev/null"
    )

    def stop() -> None:
        as_postgres(f"{PG15}/pg_ctl -D {d}/data -m fast -w stop >/dev/null")

    return Server("plain-15", socket_url(str(d), port), stop)


def start_citus(workdir: Path) -> Server:
    d = workdir / "citus"
    port = free_base_port()
    subprocess.run(
        ["bash", str(SHARED / "cluster.sh"), "start", str(d), str(port)],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    for p in (port, port + 1, port + 2):
        admin_sql(
            socket_url(str(d), p),
            *(f"ALTER SYSTEM SET {k} = {v}" for k, v in FAST.items()),
            "SELECT pg_reload_conf()",
        )

    def stop() -> None:
        subprocess.run(["bash", str(SHARED / "cluster.sh"), "stop", str(d)], capture_output=True)

    return Server(
        "citus",
        socket_url(str(d), port),
        stop,
        [socket_url(str(d), port + 1), socket_url(str(d), port + 2)],
    )


# -- measurements ---------------------------------------------------------------------------------


def provision(tenancy: FlaskTenants, app: Flask, names: list[str], rows: int) -> list[float]:
    """Create the tenants (timed, ms each), then fill each with ``rows`` items (untimed)."""
    times = []
    for n in names:
        t0 = time.perf_counter()
        tenancy.create_tenant(n)
        times.append((time.perf_counter() - t0) * 1000)
    with app.app_context():
        for n in names:
            with with_db(n) as s:
                s.execute(insert(Item), [{"name": f"{n}-{i}", "plan_id": 1} for i in range(rows)])
                s.commit()
    return times


def runner(app: Flask, names: list[str]) -> Callable[[int], None]:
    client = app.test_client()
    state = {"i": 0}

    def run(n: int) -> None:
        for _ in range(n):
            name = names[state["i"] % len(names)]
            state["i"] += 1
            r = client.get("/items", base_url=f"http://{name}.example.com")
            if r.status_code != 200 or r.json["tenant"] != name:
                raise RuntimeError(f"{name}: {r.status_code} {r.get_data(as_text=True)[:200]}")

    return run


@contextmanager
def counting(app: Flask, remote: bool) -> Iterator[dict[str, int]]:
    """Count statements the app sends, and (``remote``) the commands Citus sends to workers, on
    a separate engine whose connections log remote commands to the client."""
    st = app.extensions["flask_tenants"]
    counts = {"statements": 0, "remote": 0}
    old = st.engine
    options = {"options": "-c citus.log_remote_commands=on -c client_min_messages=log"}
    eng = create_engine(old.url, connect_args=options if remote else {}, pool_size=2)
    from flask_tenants.isolation import install

    install(eng)

    @event.listens_for(eng, "before_cursor_execute")
    def _count(*a: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(eng, "connect")
    def _notices(dbapi_conn: Any, rec: Any) -> None:
        def handler(diag: Any) -> None:
            if (diag.message_primary or "").startswith("issuing "):
                counts["remote"] += 1

        dbapi_conn.add_notice_handler(handler)

    st.engine = eng
    st.session_maker.configure(bind=eng)
    try:
        yield counts
    finally:
        st.engine = old
        st.session_maker.configure(bind=old)
        eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small and quick (< 40 s)")
    args = ap.parse_args()
    n_tenants, rows, rounds, per_round = (8, 100, 3, 120) if args.smoke else (24, 100, 7, 600)
    if not (SHARED / "cluster.sh").is_file() or not (PG15 / "initdb").exists():
        sys.exit("Needs ../shared/citus and PostgreSQL 15: sudo bash ../shared/citus/install.sh")
    t_start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="citus-bench-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    servers: list[Server] = []
    try:
        for start in (start_embedded, lambda: start_pg15(workdir), lambda: start_citus(workdir)):
            t0 = time.perf_counter()
            servers.append(start())
            log(f"{servers[-1].name} up in {time.perf_counter() - t0:.1f}s")
        names = [f"t{i:03d}" for i in range(n_tenants)]
        apps: dict[str, tuple[Flask, Callable[[int], None]]] = {}
        prov: dict[str, list[float]] = {}
        for s in servers:
            app, tenancy = make_app(s.url)
            prov[s.name] = provision(tenancy, app, names, rows)
            apps[s.name] = (app, runner(app, names))
            apps[s.name][1](len(names) * 2)  # warm up: every tenant cached, pools full
        if servers[-1].name == "citus":
            with create_engine(servers[-1].url, poolclass=NullPool).connect() as c:
                from flask_tenants.citus import tenant_placements

                spread = sorted(set(tenant_placements(c).values()))
                log(f"citus: {len(tenant_placements(c))} distributed tenants on {spread}")
        rps: dict[str, list[float]] = {s.name: [] for s in servers}
        order = [s.name for s in servers]
        for r in range(rounds):
            rot = order[r % len(order) :] + order[: r % len(order)]
            for name in rot:
                t0 = time.perf_counter()
                apps[name][1](per_round)
                rps[name].append(per_round / (time.perf_counter() - t0))
        stmts: dict[str, dict[str, int]] = {}
        n_count = len(names) * 4
        for s in servers:
            app, run = apps[s.name]
            with counting(app, remote=s.name == "citus") as counts:
                run(len(names))  # new connections: resolve nothing new, warm the counting pool
                counts["statements"] = counts["remote"] = 0
                run(n_count)
            stmts[s.name] = counts

        print(f"\n## Citus vs plain PostgreSQL ({'smoke' if args.smoke else 'full'} run)\n")
        print(
            f"GET /items (10 of {rows} rows), {n_tenants} tenants round-robin, Flask test client, "
            f"1 thread, {rounds} interleaved rounds of {per_round} requests; unix sockets, "
            "fsync off.\n"
        )
        print(
            "| contestant | req/s (median) | vs plain-18 | vs plain-15 | statements/request "
            "(app -> server) | commands/request (coordinator -> workers) |"
        )
        print("|---|---|---|---|---|---|")
        for s in servers:
            med = statistics.median(rps[s.name])
            cells = []
            for base in ("plain-18", "plain-15"):
                ratios = [a / b for a, b in zip(rps[s.name], rps[base], strict=True)]
                cells.append(f"{statistics.median(ratios):.2f}x")
            st = stmts[s.name]
            remote = f"{st['remote'] / n_count:.2f}" if s.name == "citus" else "-"
            print(
                f"| {s.name} | {med:.0f} | {cells[0]} | {cells[1]} | "
                f"{st['statements'] / n_count:.2f} | {remote} |"
            )
        print(
            "\nTenant provisioning (create_tenant: schema, 1 table with a FK to a shared table, "
            "domain-less; ms):\n"
        )
        print("| contestant | first tenant | median of the others | max of the others |")
        print("|---|---|---|---|")
        for s in servers:
            t = prov[s.name]
            print(f"| {s.name} | {t[0]:.1f} | {statistics.median(t[1:]):.1f} | {max(t[1:]):.1f} |")
        print(f"\n(total run {time.perf_counter() - t_start:.1f}s)")
    finally:
        for s in reversed(servers):
            try:
                s.stop()
            except Exception as exc:  # noqa: BLE001
                log(f"stopping {s.name}: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
