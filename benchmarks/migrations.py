"""Migrating a fleet: one real tenant revision (add a column) over every tenant, then a no-op
re-run, with ``--jobs 1`` and ``--jobs 2``.

    python benchmarks/migrations.py             # 1,000 tenants (takes a few minutes to set up)
    python benchmarks/migrations.py --smoke     # 50 tenants (CI, well under 30 s)
    python benchmarks/migrations.py -n 300 --jobs 1 2 4

Each tenant has the 11-table model of benchmarks/_fleet_common.py. For every ``jobs`` value a new
revision adding a column to ``customers`` is written, then ``migrate_tenants`` (what ``flask
tenants migrate`` runs) is timed: the real run upgrades every tenant in its own transaction, the
re-run reads every tenant's revision in one query and finds nothing to do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fleet_common import build_app, database, table  # noqa: E402

from flask_tenants import lifecycle  # noqa: E402
from flask_tenants.migrations import (  # noqa: E402
    init_tenant_migrations,
    make_revision,
    migrate_tenants,
)

ADD_COLUMN = '''"""add customers.{col}

TENANT MIGRATION
"""
from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("customers", sa.Column("{col}", sa.String(20), nullable=True))


def downgrade():
    op.drop_column("customers", "{col}")
'''


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000, help="tenants (default 1000)")
    p.add_argument("--smoke", action="store_true", help="a short run for CI (50 tenants)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="jobs values (1 2)")
    p.add_argument("--driver", default="psycopg", choices=["psycopg", "psycopg2"])
    args = p.parse_args(argv)
    n = 50 if args.smoke else args.n
    with database(args.driver) as url, tempfile.TemporaryDirectory() as tmp:
        mdir = Path(tmp) / "tenants"
        app, ext, _ = build_app(url, str(mdir))
        state = ext.state_for(app)
        init_tenant_migrations(mdir)
        make_revision(state, "initial", autogenerate=True)
        head = state.tenant_heads()[0]
        t0 = time.perf_counter()
        session = state.session_maker()
        try:
            for i in range(n):  # one transaction each: DDL slows down in long transactions
                lifecycle.create_tenant(session, state, f"t{i:05d}")
                session.commit()
        finally:
            session.close()
        setup = time.perf_counter() - t0
        each = setup / n * 1000
        print(f"\n{n} tenants created at {head[:12]} in {setup:.1f} s ({each:.1f} ms each)")
        rows = []
        down = head
        for i, jobs in enumerate(args.jobs):
            rev = f"add_c{i}_{int(time.time())}"[:32]
            (mdir / "versions" / f"{rev}.py").write_text(
                ADD_COLUMN.format(col=f"c{i}_jobs{jobs}", rev=rev, down=down)
            )
            down = rev
            # as a fresh 'flask tenants migrate' process would: new server connections, whose
            # catalog caches are cold (the pool's would be warm from creating the tenants)
            state.engine.dispose()
            real = migrate_tenants(state, jobs=jobs)
            state.engine.dispose()
            noop = migrate_tenants(state, jobs=jobs)
            assert len(real.done) == n and not real.failed, (real.failed[:3], len(real.done))
            assert len(noop.skipped) == n and not noop.done and not noop.failed
            for label, rep in (("add column", real), ("no-op re-run", noop)):
                rows.append(
                    [
                        jobs,
                        rep.mode,
                        label,
                        n,
                        f"{rep.seconds:.2f}",
                        f"{rep.seconds / n * 1000:.2f}",
                        f"{rep.read_seconds * 1000:.0f}",
                    ]
                )
            print(f"  jobs={jobs}: done", flush=True)
        print(f"\nTenant migrations over {n} tenants (driver {args.driver})\n")
        print(
            table(
                ["jobs", "mode", "run", "tenants", "wall s", "per tenant ms", "read revisions ms"],
                rows,
            )
        )
        state.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
