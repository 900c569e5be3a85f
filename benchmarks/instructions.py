"""Instructions per request of the app process, plain vs flask-tenants (by hand; needs valgrind).

    python benchmarks/instructions.py                # both doors, 3 hash seeds, ~15 min
    python benchmarks/instructions.py --doors async --seeds 0
    python benchmarks/instructions.py --smoke        # CI: every child once, without valgrind

Requests per second on a shared 2-core machine move by +-25% from one round to the next, for
the same app. This measures what does not move: the CPU instructions the app's own process
executes per request (valgrind's callgrind counts them exactly), for ``GET /tanks`` (10 of 100
rows, requests spread over 50 tenants) in the plain app and in the tenancy app. Each figure is
the difference between a process that served ``--requests`` more requests and one that did
not, so start-up and warm-up cancel out.

What makes a count repeat (to ~30k from one run to the next): the requests are made one at a
time by calling the WSGI / ASGI app directly (no test client or server around it); the
processes run one after the other (side by side they wait on PostgreSQL differently and the
drivers' wait loops run more or less often); ``PYTHONHASHSEED`` is fixed per run. The hash seed
still moves a count by up to ~50k instructions (dict and set layouts), so the figures are the
mean over ``--seeds``, with the range of the extra cost. The tenancy app runs with
``TENANTS_CACHE_TTL = 3600``: valgrind slows the app ~50x, and the fingerprint check, due every
5 s of wall time, would be counted ~50x too often (it costs a few ms per process per 5 s;
``flask_bench.py --big`` measures it).

Not counted: PostgreSQL's side (the backend's extra work per request; see the CPU columns of
``flask_bench.py`` / ``quart_bench.py``) and time in the kernel. Debian: ``apt-get install -y
valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WARM = 200
#: The fingerprint check runs once per process every TTL seconds of wall time; valgrind slows the
#: app ~50x, so at the default 5 s it would be counted ~50x too often. Its cost at the default
#: TTL is a few ms per 5 s per process (flask_bench.py --big measures it).
STEADY = {"TENANTS_CACHE_TTL": 3600}
PLAIN_HOST = "www.example.com"


def _hosts(app_kind: str, tenants: int) -> list[str]:
    from flask_apps import tenant_host

    return [PLAIN_HOST] if app_kind == "plain" else [tenant_host(i) for i in range(tenants)]


# -- the child: one app, n requests ---------------------------------------------------------


def _wsgi_runner(app: Any, hosts: list[str]) -> Callable[[int], None]:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"GET /tanks answered {status}")

    def run(n: int) -> None:
        for i in range(n):
            host = hosts[i % len(hosts)]
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/tanks",
                "QUERY_STRING": "",
                "SERVER_NAME": host,
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": host,
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(),
                "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0),
                "wsgi.multithread": False,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
            }
            body = app(environ, start_response)
            b"".join(body)
            if hasattr(body, "close"):
                body.close()

    return run


def _asgi_runner(
    app: Any, hosts: list[str], loop: asyncio.AbstractEventLoop, concurrency: int = 1
) -> Any:
    """Requests one after the other by default: with several in flight, how often the event
    loop wakes up depends on the timing (valgrind slows the app 50x, not PostgreSQL), and so
    does the count."""

    async def one(host: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/tanks",
            "raw_path": b"/tanks",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", host.encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "extensions": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"GET /tanks answered {message['status']}")

        await app(scope, receive, send)

    async def many(n: int) -> None:
        todo = iter(range(n))

        async def worker(k: int) -> None:
            for i in todo:
                await one(hosts[i % len(hosts)])

        await asyncio.gather(*(worker(k) for k in range(concurrency)))

    return lambda n: loop.run_until_complete(many(n))


def child(door: str, app_kind: str, driver: str, n: int, tenants: int) -> None:
    from _harness import detach_tenancy, with_driver

    hosts = _hosts(app_kind, tenants)
    if door == "sync":
        import flask_apps

        url = with_driver(os.environ["BENCH_URL"], driver)
        if app_kind == "plain":
            detach_tenancy()  # as in a process that never imported flask-tenants
            run = _wsgi_runner(flask_apps.plain_app(url), hosts)
        else:
            run = _wsgi_runner(flask_apps.tenancy_app(url, **STEADY), hosts)
    else:
        import quart_apps

        loop = asyncio.new_event_loop()
        url = os.environ["BENCH_URL"]
        if app_kind == "plain":
            detach_tenancy()
            app = quart_apps.plain_app(url)
        else:
            app = quart_apps.tenancy_app(url, **STEADY)
        loop.run_until_complete(app.startup())
        run = _asgi_runner(app, hosts, loop)
    run(WARM)
    if n:
        run(n)


# -- the parent: fill, then count -------------------------------------------------------------


def fill(url: str, tenants: int, rows: int) -> dict[str, str]:
    """Create and fill the four databases; their URLs by ``(door, app)``."""
    import flask_apps
    import quart_apps
    from _harness import ensure_database, with_driver
    from quart_bench import asyncpg_url

    urls = {
        "sync plain": ensure_database(url, "bench_plain"),
        "sync tenancy": ensure_database(url, "bench_tenancy"),
        "async plain": asyncpg_url(ensure_database(url, "bench_quart_plain")),
        "async tenancy": asyncpg_url(ensure_database(url, "bench_quart_tenancy")),
    }
    flask_apps.fill_plain(flask_apps.plain_app(with_driver(urls["sync plain"], "psycopg")), rows)
    flask_apps.fill_tenancy(
        flask_apps.tenancy_app(with_driver(urls["sync tenancy"], "psycopg")), tenants, rows
    )
    loop = asyncio.new_event_loop()
    p_app = quart_apps.plain_app(urls["async plain"])
    t_app = quart_apps.tenancy_app(urls["async tenancy"])
    loop.run_until_complete(quart_apps.fill_plain(p_app, rows))

    async def fill_t() -> None:
        async with t_app.app_context():
            await quart_apps.fill_tenancy(t_app, tenants, rows)

    loop.run_until_complete(fill_t())
    for app in (p_app, t_app):
        loop.run_until_complete(
            (app.extensions.get("bench_engine") or app.extensions["flask_tenants"].engine).dispose()
        )
    return urls


def instructions(
    door: str,
    app_kind: str,
    driver: str,
    n: int,
    url: str,
    tenants: int,
    smoke: bool = False,
    seed: int = 0,
) -> int:
    """Instructions executed by a child process serving WARM + n requests (``smoke``: the
    child runs without valgrind and 0 is returned)."""
    counter = [] if smoke else ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    cmd = [
        *counter,
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        door,
        app_kind,
        driver,
        str(n),
        "--tenants",
        str(tenants),
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        # a fixed hash seed: dict and set layouts, and so the count, repeat
        env={**os.environ, "BENCH_URL": url, "PYTHONHASHSEED": str(seed)},
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or (found is None and not smoke):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return int(found.group(1)) if found else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--child", nargs=4, metavar=("DOOR", "APP", "DRIVER", "N"))
    ap.add_argument("--doors", default="sync,async")
    ap.add_argument("--drivers", default="psycopg2,psycopg", help="sync door drivers")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2", help="PYTHONHASHSEED values to average over")
    ap.add_argument("--smoke", action="store_true", help="CI: run every child once, no valgrind")
    args = ap.parse_args(argv)
    if args.smoke:
        args.requests, args.tenants, args.seeds = 5, 5, "0"
    if args.child:
        door, app_kind, driver, n = args.child
        child(door, app_kind, driver, int(n), args.tenants)
        return 0
    if shutil.which("valgrind") is None and not args.smoke:
        raise SystemExit("instructions.py needs valgrind (Debian: apt-get install -y valgrind)")
    from _harness import log, server_url, table

    url, _ = server_url(stat_statements=False)
    log("filling the databases ...")
    urls = fill(url, args.tenants, args.rows)
    cases = [
        (door, driver)
        for door in args.doors.split(",")
        for driver in (args.drivers.split(",") if door == "sync" else ["asyncpg"])
    ]
    seeds = [int(x) for x in args.seeds.split(",")]
    jobs = {
        (door, driver, kind, n, seed): (
            door,
            kind,
            driver,
            n,
            urls[f"{door} {kind}"],
            args.tenants,
            args.smoke,
            seed,
        )
        for seed in seeds
        for door, driver in cases
        for kind in ("plain", "tenancy")
        for n in (0, args.requests)
    }
    log(f"{len(jobs)} processes" + (" (smoke: no valgrind)" if args.smoke else " under valgrind"))
    # one at a time: processes running side by side wait on PostgreSQL differently, and the
    # drivers' wait loops then run a different number of times
    with ThreadPoolExecutor(max_workers=4 if args.smoke else 1) as pool:
        futures = {key: pool.submit(instructions, *job) for key, job in jobs.items()}
        counted = {key: f.result() for key, f in futures.items()}
    if args.smoke:
        print(f"smoke: {len(jobs)} child runs served their requests (nothing counted)")
        return 0
    rows: list[list[object]] = []
    for door, driver in cases:

        def per(kind: str, seed: int, door: str = door, driver: str = driver) -> float:
            done, base = (counted[(door, driver, kind, n, seed)] for n in (args.requests, 0))
            return (done - base) / args.requests

        plain = statistics.fmean(per("plain", seed) for seed in seeds)
        tenancy = statistics.fmean(per("tenancy", seed) for seed in seeds)
        extra = [per("tenancy", seed) - per("plain", seed) for seed in seeds]
        rows.append(
            [
                "Flask (WSGI)" if door == "sync" else "Quart (ASGI)",
                driver,
                f"{plain / 1000:,.0f}k",
                f"{tenancy / 1000:,.0f}k",
                f"+{statistics.fmean(extra) / 1000:,.0f}k "
                f"({min(extra) / 1000:,.0f}k-{max(extra) / 1000:,.0f}k)",
                f"{plain / tenancy:.3f}x",
            ]
        )
    print(
        f"\n### App-process instructions per request (callgrind), GET /tanks, {args.tenants} "
        f"tenants, {args.requests} requests, mean of hash seeds {args.seeds}\n"
    )
    print(
        table(
            [
                "door",
                "driver",
                "plain",
                "flask-tenants",
                "extra (range over hash seeds)",
                "plain / flask-tenants",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
