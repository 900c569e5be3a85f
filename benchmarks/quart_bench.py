"""Async door benchmark: flask_tenants.aio on Quart + asyncpg vs a plain Quart app.

    python benchmarks/quart_bench.py                 # Quart test client
    python benchmarks/quart_bench.py --smoke         # < 30 s, for CI
    python benchmarks/quart_bench.py --server        # by hand: hypercorn (2 workers) + wrk

Same endpoint, figures and caveats as ``flask_bench.py`` (ratios measured in interleaved rounds
of one run on a shared 2-core machine). asyncpg keeps the plain transaction hook: its statement
is one more round trip per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import (  # noqa: E402
    RATIO_HEADERS,
    as_plain,  # noqa: E402
    fmt_ratio,
    interleave,
    log,
    ratio_cells,
    server_url,
    set_priority,
    table,
)
from _harness import ensure_database as _ensure_database  # noqa: E402
from flask_bench import (  # noqa: E402
    ServerProcess,
    _wrk_script,
    backend_pids,
    hosts_for,
    wrk,
    wrk_rounds,
)
from quart_apps import fill_plain, fill_tenancy, plain_app, tenancy_app  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from wire_count import WireCounter  # noqa: E402

PLAIN_HOST = "www.example.com"
PLAIN = "plain Quart + async SQLAlchemy"
TENANCY = "flask_tenants.aio"
LOOP = asyncio.new_event_loop()


def asyncpg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(False)


def client_runner(app: Any, hosts: list[str]) -> Callable[[int], None]:
    client = app.test_client()
    cycle = itertools.cycle(hosts)

    async def go(n: int) -> None:
        for _ in range(n):
            r = await client.get("/tanks", headers={"Host": next(cycle)})
            if r.status_code != 200:
                raise RuntimeError(f"GET /tanks answered {r.status_code}: {await r.get_data()!r}")

    def run(n: int) -> None:
        LOOP.run_until_complete(go(n))

    return run


def count_on_wire(make: Callable[[str], Any], url: str, hosts: list[str], n: int) -> list[str]:
    u = make_url(url)
    with WireCounter(u.host or "127.0.0.1", u.port or 5432) as wc:
        app = make(u.set(port=wc.port).render_as_string(False))
        LOOP.run_until_complete(app.startup())
        run = client_runner(app, hosts)
        run(len(hosts))
        wc.reset()
        run(n)
        s = wc.reset()
        LOOP.run_until_complete(app.shutdown())
        engine = app.extensions.get("bench_engine") or app.extensions["flask_tenants"].engine
        LOOP.run_until_complete(engine.dispose())
    return [
        f"{s.statements / n:.2f}",
        f"{s.round_trips / n:.2f}",
        f"{s.matching('begin') / n:.2f}",
        f"{s.matching('set_config') / n:.2f}",
    ]


def bench_test_client(args: argparse.Namespace, url: str) -> None:
    plain_url = asyncpg_url(_ensure_database(url, "bench_quart_plain"))
    ten_url = asyncpg_url(_ensure_database(url, "bench_quart_tenancy"))
    hosts = hosts_for(args.tenants)
    p_app, t_app = plain_app(plain_url), tenancy_app(ten_url)
    for app in (p_app, t_app):
        LOOP.run_until_complete(app.startup())
    LOOP.run_until_complete(fill_plain(p_app, args.rows))

    async def fill() -> None:
        async with t_app.app_context():
            await fill_tenancy(t_app, args.tenants, args.rows)

    LOOP.run_until_complete(fill())
    p_run, t_run = as_plain(client_runner(p_app, [PLAIN_HOST])), client_runner(t_app, hosts)
    p_run(200)
    t_run(max(200, 2 * len(hosts)))
    counts = {
        PLAIN: count_on_wire(plain_app, plain_url, [PLAIN_HOST], 50),
        TENANCY: count_on_wire(tenancy_app, ten_url, hosts, 50),
    }
    p_pids = backend_pids(url, "bench_quart_plain")
    t_pids = backend_pids(url, "bench_quart_tenancy")
    log(f"== asyncpg: {args.rounds} rounds x {args.requests} requests")
    series = interleave(
        [(PLAIN, p_run, lambda: p_pids), (TENANCY, t_run, lambda: t_pids)],
        args.rounds,
        args.requests,
    )
    print(
        f"\n### Quart test client (asyncpg), GET /tanks (10 of {args.rows} rows), "
        f"{args.tenants} tenants, {args.rounds} interleaved rounds x {args.requests} requests\n"
    )
    print(
        table(
            ["app", "req/s (median)", "CPU us/req", *RATIO_HEADERS],
            [
                [s.name, f"{s.median:,.0f}", f"{s.cpu_per_request * 1e6:,.0f}"]
                + ratio_cells(s, series[0])
                for s in series
            ],
        )
    )
    print("\n### Statements per request (tenant resolution cached)\n")
    print(
        table(
            ["app", "statements (wire)", "round trips", "transactions", "search_path statements"],
            [[name, *c] for name, c in counts.items()],
        )
    )
    for app in (p_app, t_app):
        LOOP.run_until_complete(app.shutdown())


class Hypercorn(ServerProcess):
    """``hypercorn -w N`` serving one of the factories of quart_apps.py."""

    def __init__(self, factory: str, env: dict[str, str], workers: int) -> None:
        super().__init__(["hypercorn", "-w", str(workers), f"quart_apps:{factory}()"], env, HERE)


def bench_server(args: argparse.Namespace, url: str) -> None:
    plain_url = asyncpg_url(_ensure_database(url, "bench_quart_plain"))
    ten_url = asyncpg_url(_ensure_database(url, "bench_quart_tenancy"))
    hosts = hosts_for(args.tenants)
    p_app, t_app = plain_app(plain_url), tenancy_app(ten_url)
    LOOP.run_until_complete(fill_plain(p_app, args.rows))

    async def fill() -> None:
        async with t_app.app_context():
            await fill_tenancy(t_app, args.tenants, args.rows)

    LOOP.run_until_complete(fill())
    env = {"BENCH_PLAIN_URL": plain_url, "BENCH_TENANCY_URL": ten_url}
    servers = {
        PLAIN: Hypercorn("served_plain_app", env, args.workers),
        TENANCY: Hypercorn("tenancy_app", env, args.workers),
    }
    scripts = {PLAIN: _wrk_script([PLAIN_HOST]), TENANCY: _wrk_script(hosts)}
    try:
        for name, srv in servers.items():
            wrk(srv.port, scripts[name], 3, args.connections)
        dbs = {PLAIN: "bench_quart_plain", TENANCY: "bench_quart_tenancy"}
        res, cpu, pg_cpu = wrk_rounds(servers, scripts, dbs, url, args)
        ratios = sorted(t / p for t, p in zip(res[TENANCY], res[PLAIN], strict=True))
        print(
            f"\n### hypercorn -w {args.workers} + wrk -c{args.connections}, asyncpg, "
            f"{args.tenants} tenants, {args.rounds} interleaved rounds of {args.seconds:g} s\n"
        )
        print(
            table(
                [
                    "app",
                    "req/s (median)",
                    "vs plain: median of rounds",
                    "CPU us/req, workers + PostgreSQL (of which PostgreSQL)",
                    "vs plain: by CPU/req",
                ],
                [
                    [
                        name,
                        f"{statistics.median(res[name]):,.0f}",
                        "1" if name == PLAIN else fmt_ratio(ratios),
                        f"{statistics.fmean(cpu[name]) * 1e6:,.0f} "
                        f"({statistics.fmean(pg_cpu[name]) * 1e6:,.0f})",
                        f"{statistics.fmean(cpu[PLAIN]) / statistics.fmean(cpu[name]):.2f}x",
                    ]
                    for name in (PLAIN, TENANCY)
                ],
            )
        )
    finally:
        for srv in servers.values():
            srv.stop()
        for s in scripts.values():
            os.unlink(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="priority of the benchmark and its server (e.g. -10 as root on a shared machine)",
    )
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--server", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args(argv)
    if args.smoke:
        args.tenants, args.rounds, args.requests = min(args.tenants, 10), 2, 100
    t0 = time.monotonic()
    set_priority(args.nice)
    url, _ = server_url(stat_statements=False)
    print(
        "Shared 2-core machine (server, load and PostgreSQL on the same cores): trust the "
        "ratios, measured in the same run, more than the absolute req/s."
    )
    if args.server:
        bench_server(args, url)
    else:
        bench_test_client(args, url)
    log(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
