"""Provisioning speed: creating a tenant vs a plain ``metadata.create_all`` into a new schema.

    python benchmarks/provisioning.py            # 200 tenants of each kind
    python benchmarks/provisioning.py --smoke    # 30 of each (CI, a few seconds)
    python benchmarks/provisioning.py -n 1000 --driver psycopg2

Both are measured in the same run, interleaved, each in one transaction on a warm connection:

* ``flask-tenants create_tenant``: the lifecycle API (``flask tenants create`` does the same):
  the tenant row, its schema, 11 tables with constraints and indexes, the migration version
  stamp at the tenant head, committed;
* ``create_all``: ``CREATE SCHEMA`` and ``metadata.create_all`` of the same 11 tables into it
  (``schema_translate_map``), committed -- what an app without the library would do.

The target of the issue: create_tenant <= 0.8x create_all (p50).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.schema import CreateSchema

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet_common import build_app, database, pct, table  # noqa: E402

from flask_tenants import lifecycle  # noqa: E402
from flask_tenants.migrations import init_tenant_migrations, make_revision  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200, help="tenants of each kind (default 200)")
    p.add_argument("--smoke", action="store_true", help="a short run for CI (30 of each)")
    p.add_argument("--driver", default="psycopg", choices=["psycopg", "psycopg2"])
    p.add_argument("--max-ratio", type=float, default=None, help="exit 1 above this p50 ratio")
    args = p.parse_args(argv)
    n = 30 if args.smoke else args.n
    with database(args.driver) as url, tempfile.TemporaryDirectory() as tmp:
        mdir = str(Path(tmp) / "tenants")
        app, ext, models = build_app(url, mdir)
        state = ext.state_for(app)
        init_tenant_migrations(mdir)
        with app.app_context():
            make_revision(state, "initial", autogenerate=True)  # the stamp is a real head
        heads = state.tenant_heads()
        tables = state.tenant_tables
        md = MetaData()
        copies = [t.to_metadata(md) for t in tables]
        engine = state.engine
        maker = state.session_maker

        def via_library(i: int) -> float:
            t0 = time.perf_counter()
            session = maker()
            try:
                lifecycle.create_tenant(session, state, f"lib_{i:05d}")
                session.commit()
            finally:
                session.close()
            return time.perf_counter() - t0

        def via_create_all(i: int) -> float:
            name = f"raw_{i:05d}"
            t0 = time.perf_counter()
            with engine.connect() as conn:
                with conn.begin():
                    conn.execute(CreateSchema(name))
                    c = conn.execution_options(schema_translate_map={None: name})
                    md.create_all(c, tables=copies)
            return time.perf_counter() - t0

        for i in range(5):  # warm up: DDL cache, pools, catalog caches
            via_library(90000 + i)
            via_create_all(90000 + i)
        lib: list[float] = []
        raw: list[float] = []
        t_start = time.perf_counter()
        for i in range(n):
            if i % 2:
                lib.append(via_library(i))
                raw.append(via_create_all(i))
            else:
                raw.append(via_create_all(i))
                lib.append(via_library(i))
        wall = time.perf_counter() - t_start
        rows = []
        for label, xs in (("flask-tenants create_tenant", lib), ("create_all", raw)):
            rows.append(
                [
                    label,
                    n,
                    f"{pct(xs, 50) * 1000:.2f}",
                    f"{pct(xs, 95) * 1000:.2f}",
                    f"{sum(xs) / len(xs) * 1000:.2f}",
                ]
            )
        ratio50 = pct(lib, 50) / pct(raw, 50)
        ratio_mean = (sum(lib) / len(lib)) / (sum(raw) / len(raw))
        print(
            f"\nProvisioning {len(tables)} tenant tables + version stamp ({heads[0][:12]}), "
            f"driver {args.driver}, {wall:.1f} s total\n"
        )
        print(table(["way", "tenants", "p50 ms", "p95 ms", "mean ms"], rows))
        print(f"\ncreate_tenant / create_all: p50 {ratio50:.2f}x, mean {ratio_mean:.2f}x")
        engine.dispose()
    if args.max_ratio is not None and ratio50 > args.max_ratio:
        print(f"FAIL: p50 ratio {ratio50:.2f} > {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
