"""Sync door benchmark: flask-tenants vs the same endpoint in a plain Flask + Flask-SQLAlchemy app.

    python benchmarks/flask_bench.py                 # test client, psycopg2 and psycopg 3
    python benchmarks/flask_bench.py --smoke         # < 30 s, for CI: the script cannot rot
    python benchmarks/flask_bench.py --server        # by hand: gunicorn (2 workers) + wrk
    python benchmarks/flask_bench.py --big 10000     # by hand: 10,000 tenants vs 50

``GET /tanks`` lists 10 of a tenant's 100 rows; requests are spread over the tenants (a new
tenant on every request). Figures are requests per second of each contestant measured in
interleaved rounds of the same run, and their ratio: on a shared 2-core machine the absolute
numbers move, the ratios much less. Statement counts are taken on the wire (a counting proxy,
``wire_count.py``) and, when the server has it, from ``pg_stat_statements``.

Starts its own embedded PostgreSQL unless ``DATABASE_URL`` is set (a server URL; databases
``bench_plain``, ``bench_tenancy`` and ``bench_big`` are created on it).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import (  # noqa: E402
    RATIO_HEADERS,
    as_plain,  # noqa: E402
    cpu_delta,
    fmt_ratio,
    interleave,
    log,
    process_cpu_by_pid,
    ratio_cells,
    round_ratios,
    rss_kib,
    server_url,
    set_priority,
    table,
    with_driver,
)
from _harness import ensure_database as _ensure_database  # noqa: E402
from flask_apps import (  # noqa: E402
    fill_plain,
    fill_tenancy,
    plain_app,
    tenancy_app,
    tenant_host,
)
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from wire_count import WireCounter  # noqa: E402

PLAIN_HOST = "www.example.com"
PLAIN = "plain Flask-SQLAlchemy"
FAST = "flask-tenants"
CLASSIC = "flask-tenants, tenants_fast_path=False"


def classic_app(url: str) -> Any:
    """The tenancy app with the driver fast paths off: the hook's statement on its own."""
    app = tenancy_app(url)
    app.extensions["flask_tenants"].engine.update_execution_options(tenants_fast_path=False)
    return app


def hosts_for(tenants: int, seed: int = 7) -> list[str]:
    """Every tenant's host once, in a fixed shuffled order (requests cycle through it)."""
    hosts = [tenant_host(i) for i in range(tenants)]
    random.Random(seed).shuffle(hosts)
    return hosts


def client_runner(app: Any, hosts: list[str]) -> Callable[[int], None]:
    """``run(n)``: ``n`` GET /tanks through the test client, cycling over ``hosts``."""
    client = app.test_client()
    cycle = itertools.cycle(hosts)

    def run(n: int) -> None:
        for _ in range(n):
            r = client.get("/tanks", headers={"Host": next(cycle)})
            if r.status_code != 200:
                raise RuntimeError(f"GET /tanks answered {r.status_code}: {r.data[:300]!r}")

    return run


# -- statement counts ----------------------------------------------------------------------


def count_on_wire(
    make: Callable[[str], Any], url: str, hosts: list[str], requests: int
) -> dict[str, float]:
    """Statements, round trips and transactions per request, counted by a proxy."""
    u = make_url(url)
    with WireCounter(u.host or "127.0.0.1", u.port or 5432) as wc:
        app = make(u.set(port=wc.port).render_as_string(False))
        run = client_runner(app, hosts)
        run(len(hosts))  # every tenant resolved and cached
        wc.reset()
        run(requests)
        stats = wc.reset()
        with app.app_context():
            from flask import current_app

            for eng in current_app.extensions["sqlalchemy"].engines.values():
                eng.dispose()
    begins = stats.matching("begin")
    return {
        "statements": stats.statements / requests,
        "round_trips": stats.round_trips / requests,
        "transactions": begins / requests,
        "set_config": stats.matching("set_config('search_path'") / requests,
    }


def count_stat_statements(url: str, database: str, run: Callable[[int], None], n: int) -> float:
    """Statements per request as ``pg_stat_statements`` sees them in ``database``."""
    eng = create_engine(
        make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    q = text(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
        "ON d.oid = s.dbid WHERE d.datname = :db"
    )
    try:
        with eng.connect() as c:
            c.execute(text("SELECT pg_stat_statements_reset()"))
        run(n)
        with eng.connect() as c:
            total = c.execute(q, {"db": database}).scalar() or 0
        return float(total) / n
    finally:
        eng.dispose()


# -- test client -----------------------------------------------------------------------------


def bench_test_client(
    args: argparse.Namespace, url: str, has_pss: bool
) -> tuple[list[list[object]], list[list[object]]]:
    speed: list[list[object]] = []
    counts: list[list[object]] = []
    plain_url = _ensure_database(url, "bench_plain")
    ten_url = _ensure_database(url, "bench_tenancy")
    hosts = hosts_for(args.tenants)
    for driver in args.drivers:
        log(f"== {driver}: preparing")
        p_app = plain_app(with_driver(plain_url, driver))
        t_app = tenancy_app(with_driver(ten_url, driver))
        fill_plain(p_app, args.rows)
        fill_tenancy(t_app, args.tenants, args.rows)
        c_app = classic_app(with_driver(ten_url, driver))
        p_run = as_plain(client_runner(p_app, [PLAIN_HOST]))
        t_run = client_runner(t_app, hosts)
        c_run = client_runner(c_app, hosts)
        p_run(200)
        t_run(max(200, 2 * len(hosts)))
        c_run(max(200, 2 * len(hosts)))
        wire = {
            PLAIN: count_on_wire(plain_app, with_driver(plain_url, driver), [PLAIN_HOST], 50),
            FAST: count_on_wire(tenancy_app, with_driver(ten_url, driver), hosts, 50),
            CLASSIC: count_on_wire(classic_app, with_driver(ten_url, driver), hosts, 50),
        }
        pss = dict.fromkeys(wire, "-")
        if has_pss:
            for name, run, db in (
                (PLAIN, p_run, "bench_plain"),
                (FAST, t_run, "bench_tenancy"),
                (CLASSIC, c_run, "bench_tenancy"),
            ):
                pss[name] = f"{count_stat_statements(url, db, run, 100):.2f}"
        p_pids = backend_pids(url, "bench_plain")
        t_pids = backend_pids(url, "bench_tenancy")  # both tenancy apps' backends
        log(f"== {driver}: {args.rounds} rounds x {args.requests} requests")
        series = interleave(
            [
                (PLAIN, p_run, lambda p=p_pids: p),
                (FAST, t_run, lambda p=t_pids: p),
                (CLASSIC, c_run, lambda p=t_pids: p),
            ],
            args.rounds,
            args.requests,
        )
        for s in series:
            speed.append(
                [
                    driver,
                    s.name,
                    f"{s.median:,.0f}",
                    f"{s.cpu_per_request * 1e6:,.0f} ({s.server_cpu_per_request * 1e6:,.0f})",
                    *ratio_cells(s, series[0]),
                ]
            )
            c = wire[s.name]
            counts.append(
                [
                    driver,
                    s.name,
                    f"{c['statements']:.2f}",
                    pss[s.name],
                    f"{c['round_trips']:.2f}",
                    f"{c['transactions']:.2f}",
                    f"{c['set_config']:.2f}",
                ]
            )
    return speed, counts


# -- real server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


class ServerProcess:
    """A server started as ``python -m <cmd>`` on a free port, with its worker processes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", *args, "-b", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd)
        _wait_port(self.port, self.proc)

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Gunicorn(ServerProcess):
    """``gunicorn -w N`` serving one of the factories of flask_apps.py."""

    def __init__(self, factory: str, env: dict[str, str], workers: int, worker_class: str):
        args = ["gunicorn", "-w", str(workers), "-k", worker_class, "--chdir", str(HERE)]
        super().__init__([*args, "--log-level", "warning", f"flask_apps:{factory}()"], env)


def _wrk_script(hosts: list[str]) -> str:
    fd, path = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(fd, "w") as fh:
        fh.write("local hosts = {" + ",".join(f'"{h}"' for h in hosts) + "}\n")
        fh.write(
            "local i = math.random(#hosts)\n"
            "request = function()\n"
            "  i = i % #hosts + 1\n"
            '  return wrk.format("GET", "/tanks", {["Host"] = hosts[i]})\n'
            "end\n"
        )
    return path


def wrk(port: int, script: str, seconds: float, connections: int) -> float:
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            script,
            f"http://127.0.0.1:{port}/tanks",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out)
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError("no Requests/sec in wrk output:\n" + out)


def wrk_measured(
    port: int,
    script: str,
    seconds: float,
    connections: int,
    workers: list[int],
    backends: Callable[[], list[int]],
) -> tuple[float, float, float]:
    """``(req/s, CPU seconds per request of the workers, of the backends)`` of one wrk run.

    Backends are listed again at the end: a server cancels the requests in flight when wrk
    closes its connections, the pool replaces connections cancelled mid-statement, so backends
    come and go between rounds. One started during the round counts with all its CPU."""
    w0, b0 = process_cpu_by_pid(workers), process_cpu_by_pid(backends())
    t0 = time.perf_counter()
    rps = wrk(port, script, seconds, connections)
    elapsed = time.perf_counter() - t0
    w_used = cpu_delta(w0, process_cpu_by_pid(workers))
    b1 = process_cpu_by_pid(backends())
    b_used = sum(used - b0.get(pid, 0.0) for pid, used in b1.items())
    served = max(1.0, rps * min(elapsed, seconds))
    return rps, w_used / served, b_used / served


Series3 = tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]


def wrk_rounds(
    servers: Mapping[str, ServerProcess],
    scripts: dict[str, str],
    databases: dict[str, str],
    url: str,
    args: argparse.Namespace,
) -> Series3:
    """Interleaved wrk rounds over the contestants of ``servers`` (the order swaps every round):
    per contestant and round, req/s, CPU s/request of workers + backends, and of backends."""
    res: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    pg_cpu: dict[str, list[float]] = {name: [] for name in servers}
    names = list(servers)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            rps, w, b = wrk_measured(
                servers[name].port,
                scripts[name],
                args.seconds,
                args.connections,
                servers[name].workers(),
                functools.partial(backend_pids, url, databases[name]),
            )
            res[name].append(rps)
            cpu[name].append(w + b)
            pg_cpu[name].append(b)
    return res, cpu, pg_cpu


def anon_kib(pid: int) -> int:
    """Private (anonymous) resident memory of ``pid``: where caches live."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def backend_pids(url: str, database: str) -> list[int]:
    eng = create_engine(make_url(url).set(drivername="postgresql+psycopg", database="postgres"))
    try:
        with eng.connect() as c:
            return [
                r[0]
                for r in c.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :d "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"d": database},
                )
            ]
    finally:
        eng.dispose()


def bench_server(args: argparse.Namespace, url: str) -> list[list[object]]:
    if shutil.which("wrk") is None:
        raise SystemExit("--server needs wrk (Debian: apt-get install -y wrk)")
    rows: list[list[object]] = []
    plain_url = _ensure_database(url, "bench_plain")
    ten_url = _ensure_database(url, "bench_tenancy")
    hosts = hosts_for(args.tenants)
    for driver in args.drivers:
        fill_plain(plain_app(with_driver(plain_url, driver)), args.rows)
        fill_tenancy(tenancy_app(with_driver(ten_url, driver)), args.tenants, args.rows)
        env = {
            "BENCH_PLAIN_URL": with_driver(plain_url, driver),
            "BENCH_TENANCY_URL": with_driver(ten_url, driver),
        }
        servers = {
            "plain": Gunicorn("served_plain_app", env, args.workers, args.worker_class),
            "tenancy": Gunicorn("tenancy_app", env, args.workers, args.worker_class),
        }
        scripts = {"plain": _wrk_script([PLAIN_HOST]), "tenancy": _wrk_script(hosts)}
        try:
            for name, srv in servers.items():  # warm: every worker sees every tenant
                wrk(srv.port, scripts[name], 3, args.connections)
            log(f"== {driver}: gunicorn -w {args.workers} + wrk, {args.rounds} rounds")
            dbs = {"plain": "bench_plain", "tenancy": "bench_tenancy"}
            res, cpu, pg_cpu = wrk_rounds(servers, scripts, dbs, url, args)
            ratio = [t / p for t, p in zip(res["tenancy"], res["plain"], strict=True)]
            mem = {
                name: sum(anon_kib(p) for p in srv.workers()) // 1024
                for name, srv in servers.items()
            }
            p_cpu, t_cpu = statistics.fmean(cpu["plain"]), statistics.fmean(cpu["tenancy"])
            p_pg, t_pg = statistics.fmean(pg_cpu["plain"]), statistics.fmean(pg_cpu["tenancy"])
            rows.append(
                [
                    driver,
                    "plain",
                    f"{statistics.median(res['plain']):,.0f}",
                    "1",
                    f"{p_cpu * 1e6:,.0f} ({p_pg * 1e6:,.0f})",
                    "1",
                    mem["plain"],
                ]
            )
            rows.append(
                [
                    driver,
                    "flask-tenants",
                    f"{statistics.median(res['tenancy']):,.0f}",
                    fmt_ratio(ratio),
                    f"{t_cpu * 1e6:,.0f} ({t_pg * 1e6:,.0f})",
                    f"{p_cpu / t_cpu:.2f}x",
                    mem["tenancy"],
                ]
            )
        finally:
            for srv in servers.values():
                srv.stop()
            for s in scripts.values():
                os.unlink(s)
    return rows


# -- 10,000 tenants -----------------------------------------------------------------------------


def bench_big(args: argparse.Namespace, url: str) -> None:
    driver = args.drivers[0]
    plain_url = _ensure_database(url, "bench_plain")
    small_url = _ensure_database(url, "bench_tenancy")
    big_url = _ensure_database(url, "bench_big")
    # the default TTL (5 s): with the fingerprint check, cached answers stay valid past it
    cfg = {"TENANTS_CACHE_SIZE": args.big + 1000}
    p_app = plain_app(with_driver(plain_url, driver))
    small = tenancy_app(with_driver(small_url, driver), **cfg)
    big = tenancy_app(with_driver(big_url, driver), **cfg)
    # the same with the cache never re-checked (TTL 1 h): what the 5-second checks cost
    big_1h = tenancy_app(with_driver(big_url, driver), TENANTS_CACHE_TTL=3600, **cfg)
    fill_plain(p_app, args.rows)
    fill_tenancy(small, args.tenants, args.rows)
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 1000 == 0 or done == total:
            log(f"   {done}/{total} tenants created ({time.monotonic() - t0:.0f} s)")

    fill_tenancy(big, args.big, args.rows, batch=100, progress=progress)
    # Filling can leave two connections in a pool, which then serve requests in turn: each
    # backend keeps its own catalog caches, so every app starts from one fresh connection here.
    for app in (small, big, big_1h):
        app.extensions["flask_tenants"].engine.dispose()
    me = os.getpid()
    rss0 = rss_kib(me)
    backends0 = {p: anon_kib(p) for p in backend_pids(url, "bench_big")}
    runs = {
        "plain": as_plain(client_runner(p_app, [PLAIN_HOST])),
        f"{args.tenants} tenants": client_runner(small, hosts_for(args.tenants)),
        f"{args.big} tenants": client_runner(big, hosts_for(args.big)),
        f"{args.big} tenants, TTL 1 h": client_runner(big_1h, hosts_for(args.big)),
    }
    log(f"== touching all {args.big} tenants once")
    t1 = time.perf_counter()
    runs[f"{args.big} tenants"](args.big)
    first = args.big / (time.perf_counter() - t1)
    rss1 = rss_kib(me)
    backends1 = {p: anon_kib(p) for p in backend_pids(url, "bench_big")}
    runs[f"{args.big} tenants, TTL 1 h"](args.big)  # its first pass, not measured
    runs["plain"](200)  # the other pools' connections exist before their backends are listed
    runs[f"{args.tenants} tenants"](max(200, 2 * args.tenants))
    log(f"== {args.rounds} rounds x {args.requests} requests")
    pids = {
        "plain": backend_pids(url, "bench_plain"),
        f"{args.tenants} tenants": backend_pids(url, "bench_tenancy"),
        f"{args.big} tenants": backend_pids(url, "bench_big"),
        f"{args.big} tenants, TTL 1 h": backend_pids(url, "bench_big"),
    }
    series = interleave(
        [(name, fn, (lambda p=pids[name]: p)) for name, fn in runs.items()],
        args.rounds,
        args.requests,
    )
    rows = [
        [
            s.name,
            f"{s.median:,.0f}",
            f"{s.cpu_per_request * 1e6:,.0f} ({s.server_cpu_per_request * 1e6:,.0f})",
            *ratio_cells(s, series[0]),
        ]
        for s in series
    ]
    print(f"\n### {args.big:,} tenants vs {args.tenants} ({driver}, test client)\n")
    print(table(["app", "req/s (median)", "CPU us/req (of which server)", *RATIO_HEADERS], rows))
    print(
        f"\nratio {args.big} / {args.tenants} tenants: "
        f"{fmt_ratio(round_ratios(series[2], series[1]))}"
    )
    print(
        f"ratio {args.big} tenants, TTL 5 s (fingerprint checked) / TTL 1 h: "
        f"{fmt_ratio(round_ratios(series[2], series[3]))}"
    )
    print(f"first pass over all {args.big} tenants (cold caches): {first:,.0f} req/s")
    state = big.extensions["flask_tenants"]
    timings = []
    with state.engine.connect() as conn:
        for _ in range(21):
            t2 = time.perf_counter()
            conn.execute(state.resolver.fingerprint_query()).one()
            timings.append(time.perf_counter() - t2)
        conn.rollback()
    print(
        f"resolution cache fingerprint query at {args.big} tenants: "
        f"{statistics.median(timings) * 1e3:.1f} ms (median of 21; once per process per TTL)"
    )
    print(f"benchmark process RSS: {rss0 // 1024} MiB before, {rss1 // 1024} MiB after")
    grown = [backends1[p] - backends0.get(p, 0) for p in backends1]
    print(
        "PostgreSQL backends of the tenancy pool, private memory: "
        + ", ".join(f"{backends1[p] // 1024} MiB" for p in backends1)
        + f" (grew {max(grown, default=0) // 1024} MiB at most)"
    )


# -- profile ------------------------------------------------------------------------------------


def profile(args: argparse.Namespace, url: str) -> None:
    from pyinstrument import Profiler

    ten_url = _ensure_database(url, "bench_tenancy")
    app = tenancy_app(with_driver(ten_url, args.drivers[0]))
    fill_tenancy(app, args.tenants, args.rows)
    run = client_runner(app, hosts_for(args.tenants))
    run(500)
    prof = Profiler(interval=0.0002)
    prof.start()
    run(args.requests)
    prof.stop()
    print(prof.output_text(unicode=False, color=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="priority of the benchmark and its server (e.g. -10 as root on a shared machine)",
    )
    ap.add_argument("--smoke", action="store_true", help="a short run for CI (< 30 s)")
    ap.add_argument("--drivers", default="psycopg2,psycopg")
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--requests", type=int, default=300, help="requests per contestant per round")
    ap.add_argument("--server", action="store_true", help="gunicorn + wrk instead of test client")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-class", default="sync")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0, help="wrk duration per round")
    ap.add_argument("--big", type=int, default=0, help="compare N tenants with --tenants")
    ap.add_argument("--profile", action="store_true", help="pyinstrument the tenancy requests")
    args = ap.parse_args(argv)
    args.drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
    if args.smoke:
        args.tenants, args.rounds, args.requests = min(args.tenants, 10), 2, 150
    t0 = time.monotonic()
    set_priority(args.nice)
    # --big: room for every tenant's pages, so that the figures are about tenancy, not about
    # a working set larger than shared_buffers (10,000 tenants x 100 rows: ~240 MB touched)
    url, has_pss = server_url(conf={"shared_buffers": "768MB"} if args.big else None)
    print(
        "Shared 2-core machine (server, load and PostgreSQL on the same cores): trust the "
        "ratios, measured in the same run, more than the absolute req/s."
    )
    if args.profile:
        profile(args, url)
        return 0
    if args.big:
        bench_big(args, url)
        return 0
    if args.server:
        rows = bench_server(args, url)
        print(
            f"\n### gunicorn -w {args.workers} ({args.worker_class}) + wrk -c{args.connections}, "
            f"{args.tenants} tenants x {args.rows} rows, {args.rounds} interleaved rounds of "
            f"{args.seconds:g} s\n"
        )
        print(
            table(
                [
                    "driver",
                    "app",
                    "req/s (median)",
                    "vs plain: median of rounds",
                    "CPU us/req, workers + PostgreSQL (of which PostgreSQL)",
                    "vs plain: by CPU/req",
                    "workers' RssAnon MiB",
                ],
                rows,
            )
        )
        return 0
    speed, counts = bench_test_client(args, url, has_pss)
    print(
        f"\n### Flask test client, GET /tanks (10 of {args.rows} rows), {args.tenants} tenants, "
        f"{args.rounds} interleaved rounds x {args.requests} requests\n"
    )
    print(
        table(
            ["driver", "app", "req/s (median)", "CPU us/req (of which server)", *RATIO_HEADERS],
            speed,
        )
    )
    print("\n### Statements per request (tenant resolution cached)\n")
    print(
        table(
            [
                "driver",
                "app",
                "statements (wire)",
                "statements (pg_stat_statements)",
                "round trips",
                "transactions",
                "search_path statements",
            ],
            counts,
        )
    )
    log(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
