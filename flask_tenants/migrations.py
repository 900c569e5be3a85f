"""Per-tenant Alembic migrations.

Two migration environments live side by side:

* the **public** one is Flask-Migrate's ``migrations/`` directory, unchanged: ``flask db migrate``
  and ``flask db upgrade`` handle the shared tables, once (tenant tables are filtered out of its
  autogenerate);
* the **tenant** one is ``migrations/tenants/`` (``flask tenants init-migrations`` creates it): its
  revisions run once in every tenant schema, each schema keeping its own ``alembic_version``
  table. ``flask tenants revision --autogenerate`` writes them, ``flask tenants migrate`` runs them.

Running the tenant migrations (:func:`migrate_tenants`):

* the revision of every tenant is read in one query (a ``UNION ALL`` over the schemas'
  ``alembic_version`` tables) and tenants already at head are skipped, so a run that has nothing
  to do over thousands of tenants takes a fraction of a second;
* each remaining tenant is upgraded in its own transaction, with its schema set by the library's
  transaction hook (``set_config('search_path', ..., true)``, i.e. ``SET LOCAL``) and an advisory
  lock against a concurrent run: a failure rolls back that tenant only and is reported, an
  interrupted run loses only the tenant in flight, and a re-run does only what is left;
* ``jobs`` spreads the tenants over forked worker processes, each with its own connection
  (Alembic's ``context`` and ``op`` are process-wide, so threads cannot run migrations side by
  side; without ``fork`` the run is sequential).

New tenants are built from the current models and stamped with the tenant head in the same
transaction (:meth:`TenancyState.tenant_heads`), so ``migrate`` skips them.

The user's ``migrations/tenants/env.py`` is two lines: it calls :func:`run_tenant_env`.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    MetaData,
    Table,
    column,
    create_engine,
    func,
    literal,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateSchema

from ._frameworks import current_app_or_none
from .context import _reset, _set
from .exceptions import ConfigurationError, FlaskTenantsError
from .isolation import apply_binding, install
from .naming import validate_tenant_name
from .schema import VERSION_TABLE, _unqualified_copy
from .signals import send, tenant_migrated

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from .state import TenancyState

__all__ = [
    "VERSION_TABLE",
    "TENANT_DIRNAME",
    "MigrationError",
    "TenantMigrations",
    "TenantRevision",
    "TenantResult",
    "MigrationReport",
    "attach_migrations",
    "duplicates_primary_key",
    "init_tenant_migrations",
    "read_revisions",
    "migrate_tenants",
    "stamp_tenants",
    "downgrade_tenants",
    "make_revision",
    "model_drift",
    "run_tenant_env",
    "sync_engine",
]

#: Directory of the tenant environment inside Flask-Migrate's directory.
TENANT_DIRNAME = "tenants"
#: Marker written into every tenant revision file (and its template).
TENANT_MARKER = "TENANT MIGRATION"
PUBLIC_MARKER = "PUBLIC MIGRATION"
_REQUEST = "flask_tenants.request"
_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtext('flask_tenants.migrate'), hashtext(:s))")
_LOCK_CHECK_CLIENT_SQL = text(
    "SELECT pg_advisory_xact_lock(hashtext('flask_tenants.migrate'), hashtext(:s)), "
    "set_config('client_connection_check_interval', '1000', true)"
)


class MigrationError(FlaskTenantsError, RuntimeError):
    """The tenant migration environment is missing or broken; the message says what to do."""


# -- the tenant migration environment ------------------------------------------------------------


class TenantMigrations:
    """The tenant migration directory of one app (``env.py``, ``script.py.mako``, ``versions/``).

    :meth:`heads` is cached and re-read when a file in ``versions/`` changes, so creating a tenant
    costs a directory scan, not an import of every revision.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).absolute()
        self._lock = threading.Lock()
        self._fingerprint: tuple[Any, ...] | None = None
        self._heads: tuple[str, ...] = ()
        self._script: ScriptDirectory | None = None

    def __repr__(self) -> str:
        return f"TenantMigrations({str(self.directory)!r})"

    @property
    def versions_dir(self) -> Path:
        return self.directory / "versions"

    @property
    def exists(self) -> bool:
        """True once ``init-migrations`` has created the directory (it has an ``env.py``)."""
        return (self.directory / "env.py").is_file()

    def require(self) -> TenantMigrations:
        """Self, or MigrationError when the directory was not created yet."""
        if not self.exists:
            raise MigrationError(
                f"There are no tenant migrations in {self.directory}: run "
                "'flask tenants init-migrations' to create the directory."
            )
        return self

    def config(self) -> Config:
        """A new Alembic Config for this directory (one per worker: attributes are per run)."""
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(self.directory))
        cfg.set_main_option("path_separator", "os")  # versions/ is the default location
        return cfg

    def _scan(self) -> tuple[Any, ...]:
        try:
            entries = sorted(
                (e.name, e.stat().st_mtime_ns, e.stat().st_size)
                for e in os.scandir(self.versions_dir)
                if e.name.endswith(".py")
            )
        except FileNotFoundError:
            return ("missing",)
        return (self.exists, *entries)

    def script(self) -> ScriptDirectory:
        """The Alembic ScriptDirectory, its revision map loaded (reloaded after changes)."""
        self.require()
        self._refresh()
        assert self._script is not None
        return self._script

    def _refresh(self) -> None:
        fp = self._scan()
        if fp == self._fingerprint and (self._script is not None or fp[0] is not True):
            return
        with self._lock:
            if fp == self._fingerprint and (self._script is not None or fp[0] is not True):
                return
            if not self.exists:
                self._script, self._heads = None, ()
            else:
                from alembic.script import ScriptDirectory
                from alembic.util import CommandError

                try:
                    script = ScriptDirectory.from_config(self.config())
                    heads = tuple(sorted(script.get_heads()))
                except (CommandError, Exception) as exc:  # a broken revision file
                    raise MigrationError(
                        f"The tenant migrations in {self.directory} cannot be read: {exc}"
                    ) from exc
                self._script, self._heads = script, heads
            self._fingerprint = fp

    def heads(self) -> tuple[str, ...]:
        """The head revision(s) of the tenant migrations; ``()`` when there are none."""
        if not self.exists:
            return ()
        self._refresh()
        return self._heads


def duplicates_primary_key(constraint: Any) -> bool:
    """True for a UNIQUE constraint on exactly the primary key columns (``Column(primary_key=True,
    unique=True)``, as ``TenantMixin.id`` has): PostgreSQL drops it silently in CREATE TABLE, so
    autogenerate must not compare it or it proposes adding it on every run."""
    table_ = getattr(constraint, "table", None)
    if table_ is None or not hasattr(constraint, "columns"):
        return False
    pk = {c.name for c in table_.primary_key.columns}
    return bool(pk) and {c.name for c in constraint.columns} == pk


def attach_migrations(app: Any, state: TenancyState) -> TenantMigrations | None:
    """Find ``app``'s tenant migration directory and remember it on ``state`` (idempotent).

    ``TENANTS_MIGRATIONS_DIR`` in ``app.config`` wins; else ``<Flask-Migrate directory>/tenants``
    when Flask-Migrate is set up on the app. Nothing is read until a tenant is created.
    """
    if state.migrations is not None:
        return state.migrations  # type: ignore[no-any-return]
    directory = app.config.get("TENANTS_MIGRATIONS_DIR")
    if not directory:
        migrate = app.extensions.get("migrate")
        base = getattr(migrate, "directory", None)
        if base is None:
            return None
        directory = os.path.join(base, TENANT_DIRNAME)
    state.migrations = TenantMigrations(directory)
    return state.migrations  # type: ignore[no-any-return]


# -- init-migrations ---------------------------------------------------------------------------

_ENV_PY = '''\
"""Alembic environment of the TENANT migrations.

Every revision in versions/ runs once in every tenant schema, with that schema first on the
search_path and its own alembic_version table:

    flask tenants revision --autogenerate -m "add tanks.color"   # write a tenant revision
    flask tenants migrate [--jobs 4]                            # run it in every tenant

Shared (public) tables are migrated by Flask-Migrate from the directory above
(flask db migrate / flask db upgrade).
"""

from flask_tenants.migrations import run_tenant_env

# Keyword arguments go to Alembic's context.configure(), e.g. compare_server_default=True.
run_tenant_env()
'''

_SCRIPT_MAKO = '''\
"""${message}

TENANT MIGRATION: runs once in every tenant schema (flask tenants migrate), with the tenant's
schema first on the search_path. Name tables without a schema.

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''

_README = """\
Tenant migrations (flask-tenants): each revision in versions/ runs in every tenant schema.

  flask tenants revision --autogenerate -m "message"   create a revision from the tenant models
  flask tenants migrate [--jobs N] [--tenant NAME]      bring tenant schemas to head
  flask tenants stamp head --all                        mark tenants as migrated (no SQL run)

The public (shared) tables are migrated by Flask-Migrate in the parent directory.
"""

_PUBLIC_LINE = (
    "PUBLIC MIGRATION: runs once, on the shared (public) schema (flask db upgrade).\n"
    "Tenant tables are migrated from tenants/ (flask tenants migrate)."
)


def init_tenant_migrations(directory: str | os.PathLike[str]) -> list[str]:
    """Create the tenant migration directory; returns the files written.

    When the parent directory is a Flask-Migrate one, its ``script.py.mako`` gets a
    ``PUBLIC MIGRATION`` line in the docstring so the two kinds of revision files are told apart.
    """
    d = Path(directory)
    if (d / "env.py").exists():
        raise MigrationError(f"{d} already holds a migration environment (env.py); nothing done.")
    written: list[str] = []
    (d / "versions").mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("env.py", _ENV_PY),
        ("script.py.mako", _SCRIPT_MAKO),
        ("README", _README),
    ):
        (d / name).write_text(content)
        written.append(str(d / name))
    public = d.parent / "script.py.mako"
    if public.is_file():
        src = public.read_text()
        first = '"""${message}\n'
        if PUBLIC_MARKER not in src and src.startswith(first):
            public.write_text(first + "\n" + _PUBLIC_LINE + "\n" + src[len(first) :])
            written.append(str(public))
    return written


# -- engines -------------------------------------------------------------------------------------


def sync_engine(state: TenancyState) -> Engine:
    """A sync Engine on the tenancy's database (the app's own one; for an async app, a psycopg
    engine on the same URL, made once), with the tenant transaction hook installed."""
    engine = state.engine
    if engine is None:
        raise ConfigurationError("The tenancy has no engine: initialise the extension first.")
    if hasattr(engine, "sync_engine"):  # an AsyncEngine: build a sync twin for CLI work
        twin = getattr(state, "_sync_twin", None)
        if twin is None:
            url = engine.url.set(drivername="postgresql+psycopg")
            twin = create_engine(url, pool_size=2)
            install(twin)
            state._sync_twin = twin  # type: ignore[attr-defined]
        return twin  # type: ignore[no-any-return]
    install(engine)
    return engine  # type: ignore[no-any-return]


@contextmanager
def _no_tenant() -> Iterator[None]:
    """No tenant context, cross-schema reads allowed (strict mode): fleet-wide admin work."""
    from .strict import allow_cross_tenant

    token = _set(None)
    try:
        with allow_cross_tenant():
            yield
    finally:
        _reset(token)


# -- reading every tenant's revision in one query ------------------------------------------------


@dataclass(frozen=True)
class TenantRevision:
    """A tenant's migration state: its schema exists, has a version table, its revisions."""

    name: str
    has_schema: bool
    versioned: bool
    revisions: tuple[str, ...]

    def at(self, heads: Sequence[str]) -> bool:
        """True when the tenant is exactly at ``heads`` (none and no version table for ())."""
        return self.has_schema and set(self.revisions) == set(heads)


def _version_table(schema: str) -> Any:
    return table(VERSION_TABLE, column("version_num"), schema=schema)


def read_revisions(
    conn: Connection, state: TenancyState, names: Iterable[str] | None = None
) -> dict[str, TenantRevision]:
    """Every tenant's revision(s): one catalog query, then one ``UNION ALL`` over the version
    tables (in chunks of 1,000 schemas), whatever the number of tenants."""
    tt = state.tenant_model.__table__
    regclass = func.to_regclass(func.quote_ident(tt.c.name).concat("." + VERSION_TABLE))
    q = select(
        tt.c.name,
        func.to_regnamespace(func.quote_ident(tt.c.name)).is_not(None),
        regclass.is_not(None),
    ).order_by(tt.c.name)
    wanted = None if names is None else set(names)
    if wanted is not None:
        q = q.where(tt.c.name.in_(sorted(wanted)))
    with _no_tenant():
        rows = conn.execute(q).all()
        versioned = [r[0] for r in rows if r[2]]
        found: dict[str, list[str]] = {n: [] for n in versioned}
        for i in range(0, len(versioned), 1000):
            chunk = versioned[i : i + 1000]
            parts = [select(literal(n).label("s"), _version_table(n).c.version_num) for n in chunk]
            stmt = parts[0] if len(parts) == 1 else union_all(*parts)
            for s, v in conn.execute(stmt):
                found[s].append(v)
    return {
        r[0]: TenantRevision(r[0], bool(r[1]), bool(r[2]), tuple(sorted(found.get(r[0], ()))))
        for r in rows
    }


# -- one tenant --------------------------------------------------------------------------------


@dataclass
class _Request:
    """What :func:`run_tenant_env` needs from the caller (put in ``config.attributes``)."""

    connection: Connection
    schema: str
    metadata: MetaData
    tenant_table_names: frozenset[str]
    #: the schema is known to have its version table (read in the fleet query): skip the check
    versioned: bool = False
    #: the version heads after each applied step (on_version_apply)
    heads_after: tuple[str, ...] | None = None


def _tenant_metadata(state: TenancyState) -> tuple[MetaData, frozenset[str]]:
    tables = state.tenant_tables
    if not tables:
        return MetaData(), frozenset()
    return _unqualified_copy(tables), frozenset(t.name for t in tables)


def run_tenant_env(**configure_kwargs: Any) -> None:
    """The body of the tenant ``env.py``: configure Alembic on the connection and schema the
    caller (``flask tenants migrate`` / ``revision`` / ``stamp``) prepared, and run.

    ``configure_kwargs`` go to ``context.configure`` (``include_object`` and ``include_name`` are
    combined with the library's own filters, which keep shared tables out of tenant revisions).
    """
    from alembic import context
    from alembic.util import CommandError

    if context.is_offline_mode():
        raise CommandError("Tenant migrations cannot run in offline (--sql) mode.")
    req: _Request | None = context.config.attributes.get(_REQUEST)
    if req is None:
        raise CommandError(
            "This is the tenant migration environment of flask-tenants: run it through "
            "'flask tenants migrate' / 'flask tenants revision', not the alembic command."
        )
    user_object = configure_kwargs.pop("include_object", None)
    user_name = configure_kwargs.pop("include_name", None)
    schema_tables: set[str] = set()

    def include_name(name: Any, type_: str, parent_names: Any) -> bool:  # autogenerate only
        if type_ == "schema" and name is not None:
            return False
        if type_ == "table" and not schema_tables:
            schema_tables.update(
                r[0]
                for r in req.connection.execute(
                    text(
                        "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(:s) "
                        "AND relkind IN ('r', 'p', 'v', 'm', 'f')"
                    ),
                    {"s": req.schema},
                )
            )
            schema_tables.discard(VERSION_TABLE)
            schema_tables.add("\0")  # computed, even for an empty schema
        if type_ == "table" and name not in schema_tables:
            return False  # a shared table seen through the search_path
        return True if user_name is None else bool(user_name(name, type_, parent_names))

    def include_object(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and not reflected and name not in req.tenant_table_names:
            return False  # a shared table copied only so that foreign keys compile
        if type_ == "unique_constraint" and duplicates_primary_key(obj):
            return False
        if user_object is None:
            return True
        return bool(user_object(obj, name, type_, reflected, compare_to))

    def skip_empty(ctx: Any, revision: Any, directives: list[Any]) -> None:
        cmd_opts = getattr(context.config, "cmd_opts", None)
        autogen = getattr(cmd_opts, "autogenerate", False) or context.config.attributes.get(
            "flask_tenants.autogenerate"
        )
        if autogen and directives and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            context.config.attributes["flask_tenants.empty"] = True

    def applied(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        req.heads_after = tuple(sorted(heads))

    opts: dict[str, Any] = {
        "on_version_apply": [applied],
        "connection": req.connection,
        "target_metadata": req.metadata,
        "version_table": VERSION_TABLE,
        "version_table_schema": req.schema,
        "include_schemas": False,
        "include_name": include_name,
        "include_object": include_object,
        "process_revision_directives": skip_empty,
    }
    user_apply = configure_kwargs.pop("on_version_apply", None)
    if user_apply:
        opts["on_version_apply"] = [applied, *user_apply]
    opts.update(configure_kwargs)
    context.configure(**opts)
    if req.versioned:
        # The fleet query saw this schema's version table, and it is ours (schema-qualified):
        # skip Alembic's has_table() reflection query, the slowest statement of a tenant's run.
        mc = context.get_context()
        mc._has_version_table = lambda: True  # type: ignore[method-assign]
    with context.begin_transaction():
        context.run_migrations()


@dataclass
class TenantResult:
    """What happened to one tenant during a run."""

    name: str
    status: str  # "done", "skipped" or "failed"
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0


def _first_line(exc: BaseException) -> str:
    """One line for the report: the PostgreSQL error class, message and DETAIL."""
    source: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        source = exc.orig
    lines = [ln.strip() for ln in str(source).strip().splitlines() if ln.strip()]
    msg = lines[0] if lines else type(source).__name__
    detail = next((ln for ln in lines[1:] if ln.startswith("DETAIL:")), None)
    if detail:
        msg += f" ({detail})"
    return msg if isinstance(exc, FlaskTenantsError) else f"{type(source).__name__}: {msg}"


class _Worker:
    """Runs tenant upgrades on one connection (one per process or thread)."""

    def __init__(
        self,
        state: TenancyState,
        migrations: TenantMigrations,
        target: str,
        engine: Engine | None = None,
    ) -> None:
        self.state = state
        self.migrations = migrations
        self.script = migrations.script()
        self.cfg = migrations.config()
        self.metadata, self.names = _tenant_metadata(state)
        self.target = target
        self.engine = engine or sync_engine(state)
        self.conn: Connection | None = None
        self.check_client = False
        self.used = 0

    #: A backend's catalog caches grow with every schema it touches (~28 KiB per tenant): a
    #: worker starts a new server connection after this many tenants.
    RECYCLE_AFTER = 500

    def _connection(self) -> Connection:
        if self.conn is not None and self.used and self.used % self.RECYCLE_AFTER == 0:
            self.conn.invalidate()  # a new backend, not the same one back from the pool
            self.close()
        self.used += 1
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            self.conn = self.engine.connect()
            # PostgreSQL 14+ can notice a vanished client during a long statement: a worker
            # killed on Ctrl-C then does not leave its backend migrating (and locking) on.
            version = self.conn.dialect.server_version_info or (0,)
            self.check_client = tuple(version) >= (14,)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run_env(
        self,
        conn: Connection,
        schema: str,
        fn: Callable[..., Any],
        versioned: bool = False,
        **kw: Any,
    ) -> _Request:
        """Run the tenant env.py on ``conn`` (in a transaction, search_path already set)."""
        from alembic.runtime.environment import EnvironmentContext

        req = _Request(conn, schema, self.metadata, self.names, versioned)
        self.cfg.attributes[_REQUEST] = req
        try:
            with EnvironmentContext(self.cfg, self.script, fn=fn, **kw):
                self.script.run_env()
        finally:
            self.cfg.attributes.pop(_REQUEST, None)
        return req

    def upgrade(self, name: str, versioned: bool = False) -> TenantResult:
        """Upgrade tenant ``name`` to the target in its own transaction."""
        return self.run(name, "upgrade", versioned)

    def stamp(self, name: str, versioned: bool = False) -> TenantResult:
        """Set tenant ``name``'s version table to the target, running no migration."""
        return self.run(name, "stamp", versioned)

    def run(self, name: str, action: str, versioned: bool = False) -> TenantResult:
        t0 = time.perf_counter()
        seen: dict[str, tuple[str, ...]] = {}

        def fn(rev: Any, context: Any) -> Any:
            seen["before"] = tuple(sorted(r for r in (rev or ()) if r))
            if action == "stamp":
                return self.script._stamp_revs(self.target, rev)
            if action == "downgrade":
                return self.script._downgrade_revs(self.target, rev)
            return self.script._upgrade_revs(self.target, rev)

        result = TenantResult(name, "done")
        try:
            binding = self.state.binding(name)
            conn = self._connection()
            token = _set(binding)
            try:
                with conn.begin():  # the transaction hook sets the tenant's search_path (local)
                    lock = _LOCK_CHECK_CLIENT_SQL if self.check_client else _LOCK_SQL
                    conn.execute(lock, {"s": name})
                    req = self.run_env(conn, name, fn, versioned, destination_rev=self.target)
            finally:
                _reset(token)
            result.before = seen.get("before", ())
            after = req.heads_after if req.heads_after is not None else result.before
            result.after = after
            if result.before == after:
                result.status = "skipped"
        except Exception as exc:
            result.status = "failed"
            result.before = seen.get("before", ())
            result.after = result.before
            result.error = _first_line(exc)
            if action == "upgrade" and not result.before and "already exists" in result.error:
                result.error += (
                    f" (the schema has no {VERSION_TABLE}: if its tables already match the "
                    f"models, run 'flask tenants stamp head --tenant {name}')"
                )
        result.seconds = time.perf_counter() - t0
        return result


# -- the fleet run -----------------------------------------------------------------------------


@dataclass
class MigrationReport:
    """The outcome of :func:`migrate_tenants`."""

    heads: tuple[str, ...]
    results: list[TenantResult] = field(default_factory=list)
    seconds: float = 0.0
    read_seconds: float = 0.0
    interrupted: bool = False
    jobs: int = 1
    mode: str = "sequential"

    def _of(self, status: str) -> list[TenantResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[TenantResult]:
        return self._of("done")

    @property
    def skipped(self) -> list[TenantResult]:
        return self._of("skipped")

    @property
    def failed(self) -> list[TenantResult]:
        return self._of("failed")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


def _fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


# Forked workers inherit this (set just before the pool starts, cleared after).
_FORK_WORKER: _Worker | None = None


def _proc_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    w = _FORK_WORKER
    assert w is not None
    w.engine.dispose(close=False)  # never reuse the parent's pooled connections
    w.conn = None


def _proc_task(item: tuple[str, bool]) -> TenantResult:
    assert _FORK_WORKER is not None
    try:
        return _FORK_WORKER.upgrade(*item)
    except BaseException as exc:  # never let a worker die silently: the pool would wait forever
        return TenantResult(item[0], "failed", error=f"{type(exc).__name__} in the migration")


def migrate_tenants(
    state: TenancyState,
    names: Iterable[str] | None = None,
    jobs: int = 1,
    on_plan: Callable[[int, int], None] | None = None,
    on_result: Callable[[TenantResult], None] | None = None,
    mode: str = "auto",
) -> MigrationReport:
    """Bring tenant schemas to the head revision of the tenant migrations.

    ``names`` limits the run (unknown names raise MigrationError); ``jobs`` > 1 uses that many
    forked worker processes, each with its own connection (where the platform has no ``fork``,
    the run is sequential: Alembic runs one migration at a time per process).
    ``mode='sequential'`` forces one process. ``on_plan(pending, skipped)`` is called once the
    revisions are read, ``on_result`` after each tenant. KeyboardInterrupt stops the run: the
    tenant in flight is rolled back, the report has ``interrupted`` set.
    """
    migrations = _require_migrations(state)
    script = migrations.script()
    heads = migrations.heads()
    t0 = time.perf_counter()
    engine = sync_engine(state)
    wanted = _check_names(state, names)
    with engine.connect() as conn:
        revisions = read_revisions(conn, state, wanted)
        conn.rollback()
    if wanted is not None:
        missing = sorted(set(wanted) - set(revisions))
        if missing:
            raise MigrationError(f"Unknown tenant(s): {', '.join(missing)}")
    report = MigrationReport(heads, read_seconds=time.perf_counter() - t0)
    pending: list[tuple[str, bool]] = []
    for name, rev in revisions.items():
        if rev.at(heads):
            report.results.append(TenantResult(name, "skipped", rev.revisions, rev.revisions))
        else:
            pending.append((name, rev.versioned))
    if on_plan is not None:
        on_plan(len(pending), len(report.results))
    script.revision_map  # noqa: B018 - load revisions once, before any fork
    jobs = max(1, min(jobs, len(pending)))
    if mode not in ("auto", "process", "sequential"):
        raise ValueError(f"mode must be 'auto', 'process' or 'sequential', not {mode!r}")
    if jobs == 1 or not _fork_available():
        # Alembic's context and op are process-wide proxies: one migration at a time per
        # process, so parallel work needs processes (forked: they inherit the app as it is).
        mode, jobs = "sequential", 1
    else:
        mode = "process"
    report.jobs, report.mode = jobs, mode

    def record(r: TenantResult) -> None:
        report.results.append(r)
        if r.status == "done":  # the tenant_migrated signal (flask_tenants/signals.py)
            app = current_app_or_none()
            send(tenant_migrated, app, tenant=r.name, revision=",".join(r.after))
        if on_result is not None:
            on_result(r)

    try:
        if mode == "sequential":
            w = _Worker(state, migrations, "heads", engine)
            try:
                for name, versioned in pending:
                    record(w.upgrade(name, versioned))
            finally:
                w.close()
        else:
            _run_processes(state, migrations, engine, pending, jobs, record)
    except KeyboardInterrupt:
        report.interrupted = True
    report.seconds = time.perf_counter() - t0
    return report


def _run_processes(
    state: TenancyState,
    migrations: TenantMigrations,
    engine: Engine,
    pending: list[tuple[str, bool]],
    jobs: int,
    record: Callable[[TenantResult], None],
) -> None:
    global _FORK_WORKER
    ctx = multiprocessing.get_context("fork")
    _FORK_WORKER = _Worker(state, migrations, "heads", engine)
    pool = ctx.Pool(jobs, initializer=_proc_init)
    try:
        chunk = max(1, min(16, len(pending) // (jobs * 8) or 1))
        for r in pool.imap_unordered(_proc_task, pending, chunksize=chunk):
            record(r)
        pool.close()
    except BaseException:
        pool.terminate()  # in-flight transactions die with their connections: rolled back
        raise
    finally:
        pool.join()
        _FORK_WORKER = None


def _require_migrations(state: TenancyState) -> TenantMigrations:
    m: TenantMigrations | None = state.migrations
    if m is None:
        raise MigrationError(
            "No tenant migration directory is configured: set up Flask-Migrate "
            "(Migrate(app, db)) or set TENANTS_MIGRATIONS_DIR, then run "
            "'flask tenants init-migrations'."
        )
    return m.require()


def _check_names(state: TenancyState, names: Iterable[str] | None) -> list[str] | None:
    if names is None:
        return None
    out = list(dict.fromkeys(names))
    for n in out:
        validate_tenant_name(n, state.settings.shared_schemas)
    return out


# -- stamp -------------------------------------------------------------------------------------


def _known_revisions(
    w: _Worker, state: TenancyState, wanted: list[str] | None
) -> dict[str, TenantRevision]:
    """The revisions of the ``wanted`` tenants (default: all); MigrationError for unknown ones."""
    with w.engine.connect() as conn:
        revisions = read_revisions(conn, state, wanted)
        conn.rollback()
    if wanted is not None:
        missing = sorted(set(wanted) - set(revisions))
        if missing:
            raise MigrationError(f"Unknown tenant(s): {', '.join(missing)}")
    return revisions


def stamp_tenants(
    state: TenancyState, revision: str, names: Iterable[str] | None = None
) -> list[TenantResult]:
    """Set tenants' version tables to ``revision`` without running migrations (each in its own
    transaction): for tenants created before tenant migrations were set up, or repaired by hand.
    """
    migrations = _require_migrations(state)
    wanted = _check_names(state, names)
    w = _Worker(state, migrations, revision)
    try:
        revisions = _known_revisions(w, state, wanted)
        return [w.stamp(name, rev.versioned) for name, rev in revisions.items()]
    finally:
        w.close()


def downgrade_tenants(
    state: TenancyState, revision: str, names: Iterable[str] | None = None
) -> list[TenantResult]:
    """Run the tenant migrations' ``downgrade()`` down to ``revision`` (``-1``, a revision id,
    ``base``) in the tenants ``names`` (default: all), one transaction each, one tenant after
    the other; tenants already there are skipped."""
    migrations = _require_migrations(state)
    wanted = _check_names(state, names)
    w = _Worker(state, migrations, revision)
    try:
        revisions = _known_revisions(w, state, wanted)
        return [w.run(name, "downgrade", rev.versioned) for name, rev in revisions.items()]
    finally:
        w.close()


# -- autogenerate --------------------------------------------------------------------------------


@contextmanager
def _scratch_at_head(state: TenancyState, migrations: TenantMigrations) -> Iterator[_Worker]:
    """A throw-away schema brought to head by the tenant migrations, rolled back afterwards."""
    w = _Worker(state, migrations, "heads")
    name = "ft_scratch_" + secrets.token_hex(6)
    conn = w._connection()
    try:
        with _no_tenant():
            trans = conn.begin()
            try:
                conn.execute(CreateSchema(name))
                apply_binding(conn, state.binding(name))
                w.run_env(
                    conn,
                    name,
                    lambda rev, ctx: w.script._upgrade_revs("heads", rev),
                    destination_rev="heads",
                )
                w.scratch = name  # type: ignore[attr-defined]
                yield w
            finally:
                trans.rollback()
    finally:
        w.close()


def make_revision(
    state: TenancyState, message: str | None, autogenerate: bool = True, **kw: Any
) -> str | None:
    """Write a tenant revision; with ``autogenerate``, from the difference between the tenant
    models and a scratch schema built by the existing tenant migrations. Returns the new file's
    path, or None when autogenerate found nothing to do."""
    from alembic import command

    migrations = _require_migrations(state)
    if not autogenerate:
        cfg = migrations.config()
        script = command.revision(cfg, message=message, **kw)
        migrations._fingerprint = None
        return getattr(script, "path", None)
    with _scratch_at_head(state, migrations) as w:
        conn = w._connection()
        w.cfg.attributes[_REQUEST] = _Request(conn, w.scratch, w.metadata, w.names)  # type: ignore[attr-defined]
        w.cfg.attributes["flask_tenants.autogenerate"] = True
        try:
            script = command.revision(w.cfg, message=message, autogenerate=True, **kw)
        finally:
            w.cfg.attributes.pop(_REQUEST, None)
        empty = w.cfg.attributes.pop("flask_tenants.empty", False)
    migrations._fingerprint = None
    if empty or script is None:
        return None
    return getattr(script, "path", None)


def model_drift(state: TenancyState) -> list[str]:
    """Differences between the tenant models and what the tenant migrations build (empty when
    the migrations are up to date with the models)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrations = _require_migrations(state)
    with _scratch_at_head(state, migrations) as w:
        conn = w._connection()
        scratch: str = w.scratch  # type: ignore[attr-defined]
        present = {
            r[0]
            for r in conn.execute(
                text("SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(:s)"),
                {"s": scratch},
            )
        }
        present.discard(VERSION_TABLE)
        names = w.names
        mc = MigrationContext.configure(
            conn,
            opts={
                "target_metadata": w.metadata,
                "include_name": lambda n, t, p: t != "table" or n in present,
                "include_object": lambda o, n, t, r, c: (
                    (t != "table" or r or n in names)
                    and not (t == "unique_constraint" and duplicates_primary_key(o))
                ),
            },
        )
        diffs = compare_metadata(mc, w.metadata)
    return [_describe(d) for d in diffs]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    rest = []
    for item in diff[1:]:
        label = getattr(item, "name", None)
        if label is None and isinstance(item, Table):
            label = item.name
        if label is not None:
            rest.append(str(label))
        elif isinstance(item, str):
            rest.append(item)
    return f"{kind} {' '.join(rest)}".strip()
