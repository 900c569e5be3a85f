"""Citus schema-based sharding: every tenant a distributed schema, spread over worker nodes.

With ``TENANTS_CITUS`` on (``True``, or ``'auto'`` -- the default -- when the database has the
``citus`` extension), every tenant the library creates becomes a Citus *distributed schema*: its
tables live together on one worker node, and the queries a request makes under the library's
``set_config('search_path', ..., true)`` are routed to that node. The app does not change.

How a tenant is created on Citus (:func:`create_tenant_schema`, called by the lifecycle):

* **as a superuser** (atomic): in the creation transaction itself, the shared tables that tenant
  tables reference are made reference tables if they are not yet (:func:`ensure_reference_tables`),
  ``citus.enable_schema_based_sharding`` is switched on with ``SET LOCAL`` semantics, the schema
  and its tables are created, and the setting is put back. A failure anywhere rolls back the row,
  the schema and its shards on every node.
* **as any other role** (best effort): Citus creates a new schema's shards over a second
  connection, which cannot see a schema that is not committed yet (``ERROR: schema "x" does not
  exist`` from a worker). So the (empty) distributed schema is created and committed first, on a
  short side connection, and the tables are created in the creation transaction. If the tables
  fail, or the creation transaction does not commit, the library drops that schema again (a
  compensating action); only a crash between the two leaves an empty distributed schema without
  tenant row behind, which :func:`orphan_schemas` lists.

Reference tables (:func:`reference_table_names`): every shared table that a tenant table
references by foreign key, plus ``TENANTS_CITUS_REFERENCE_TABLES``. They are converted at the first
tenant creation that needs them, or beforehand by :func:`setup_citus` /
``flask tenants citus setup`` (better: it copies the table to every node under a lock, which is
best done outside request traffic).

Placement and moves: :func:`tenant_placements` (schema -> node), :func:`move_tenant` and
:func:`rebalance` wrap ``citus_move_shard_placement`` and ``citus_rebalance_start``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.schema import CreateSchema, DropSchema

from .context import _reset, _set
from .exceptions import (
    ConfigurationError,
    FlaskTenantsError,
    SchemaCreationError,
    TenantExistsError,
)
from .naming import validate_tenant_name
from .schema import _db_message, create_tenant_tables, schema_exists
from .schema import create_tenant_schema as _plain_create_tenant_schema

if TYPE_CHECKING:
    from .state import TenancyState

__all__ = [
    "CitusError",
    "CitusInfo",
    "citus_info",
    "citus_enabled",
    "create_tenant_schema",
    "reference_table_names",
    "ensure_reference_tables",
    "setup_citus",
    "SetupReport",
    "distribute_existing_tenants",
    "tenant_placements",
    "tenant_node",
    "nodes",
    "move_tenant",
    "rebalance",
    "orphan_schemas",
    "drop_orphan_schemas",
    "make_citus_cli",
]

log = logging.getLogger("flask_tenants.citus")

GUC = "citus.enable_schema_based_sharding"


class CitusError(FlaskTenantsError, RuntimeError):
    """A Citus operation of the library failed; the message says what to do."""


@dataclass(frozen=True)
class CitusInfo:
    """Whether the database the library talks to has Citus."""

    #: The ``citus`` extension's version, None when it is not installed in this database.
    version: str | None

    @property
    def installed(self) -> bool:
        return self.version is not None


_INFO = text("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
_info_cache: weakref.WeakKeyDictionary[Engine, CitusInfo] = weakref.WeakKeyDictionary()


def citus_info(conn: Connection, refresh: bool = False) -> CitusInfo:
    """Whether ``conn``'s database has the ``citus`` extension.

    Cached per engine (one query per engine's lifetime): an app started before ``CREATE
    EXTENSION citus`` sees it after a restart, or after ``citus_info(conn, refresh=True)``.
    """
    engine = conn.engine
    info = None if refresh else _info_cache.get(engine)
    if info is None:
        info = CitusInfo(conn.execute(_INFO).scalar())
        _info_cache[engine] = info
    return info


# the role the DDL runs as right now (TENANTS_OWNER_ROLE switches it with SET LOCAL ROLE)
_CURRENT_ROLE = text(
    "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
)


def citus_enabled(conn: Connection, st: TenancyState) -> bool:
    """True when new tenants must be distributed schemas (``TENANTS_CITUS``)."""
    mode = st.settings.citus
    if mode is False:
        return False
    info = citus_info(conn)
    if mode is True and not info.installed:
        raise ConfigurationError(
            "TENANTS_CITUS is True but the database has no 'citus' extension: connect to the "
            "Citus coordinator and run CREATE EXTENSION citus there, or set TENANTS_CITUS = "
            "False (or 'auto', to follow the extension)."
        )
    return info.installed


# -- reference tables ----------------------------------------------------------------------------


def reference_table_names(st: TenancyState, conn: Connection | None = None) -> list[str]:
    """The shared tables that must be Citus reference tables, as ``regclass`` text.

    Every table outside the tenant tables that a tenant table references by foreign key (its
    name qualified with its schema when the model gives one, else resolved through the
    ``search_path``), then ``TENANTS_CITUS_REFERENCE_TABLES`` as written.
    """
    tenant = {t.key for t in st.tenant_tables}
    out: list[str] = []
    for t in st.tenant_tables:
        for fk in t.foreign_key_constraints:
            target = fk.referred_table
            if target.key in tenant:
                continue
            name = _regclass_text(target, conn)
            if name not in out:
                out.append(name)
    for name in st.settings.citus_reference_tables:
        if name not in out:
            out.append(name)
    return out


def _regclass_text(table: Any, conn: Connection | None) -> str:
    if conn is not None:
        return str(conn.dialect.identifier_preparer.format_table(table))
    return f"{table.schema}.{table.name}" if table.schema else str(table.name)


_REF_STATUS = text(
    """
    SELECT n.name, c.oid IS NOT NULL, p.partmethod::text, p.repmodel::text
    FROM unnest(:names) WITH ORDINALITY AS n(name, i)
    LEFT JOIN pg_class c ON c.oid = to_regclass(n.name)
    LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
    ORDER BY n.i
    """
).bindparams(bindparam("names", type_=ARRAY(Text)))
_MAKE_REFERENCE = text("SELECT create_reference_table(CAST(:t AS regclass))")
_confirmed: weakref.WeakKeyDictionary[Engine, frozenset[str]] = weakref.WeakKeyDictionary()


def ensure_reference_tables(conn: Connection, st: TenancyState) -> list[str]:
    """Make every table of :func:`reference_table_names` a reference table, in the caller's
    transaction; returns those converted now (``[]`` when all already were).

    ``create_reference_table`` copies the table's rows to every node and locks the table until
    commit. Raises :class:`CitusError` for a missing table or a hash-distributed one (tenant
    tables cannot reference those).
    """
    names = reference_table_names(st, conn)
    if not names or _confirmed.get(conn.engine) == frozenset(names):
        return []
    todo = []
    for name, found, method, repmodel in conn.execute(_REF_STATUS, {"names": names}):
        if not found:
            raise CitusError(
                f"The shared table {name} does not exist, but tenant tables reference it (or "
                "TENANTS_CITUS_REFERENCE_TABLES names it): create the shared tables "
                "(db.create_all() or 'flask db upgrade') before creating tenants."
            )
        if method == "n" and repmodel == "t":
            continue
        if method is not None and method != "n":
            raise CitusError(
                f"{name} is a hash-distributed Citus table; tenant tables can only reference "
                "reference tables. Undistribute it (undistribute_table) or drop the foreign key."
            )
        todo.append(name)
    if not todo:
        _confirmed[conn.engine] = frozenset(names)  # cached only once seen committed
    for name in todo:
        try:
            conn.execute(_MAKE_REFERENCE, {"t": name})
        except SQLAlchemyError as exc:
            raise CitusError(
                f"Could not make {name} a Citus reference table: {_db_message(exc)}. Run "
                f"SELECT create_reference_table('{name}') as the table's owner, then retry."
            ) from exc
    return todo


# -- tenant creation ------------------------------------------------------------------------------

_SHARDING_ON = text(f"SELECT current_setting('{GUC}'), set_config('{GUC}', 'on', true)")
_SHARDING_SET = text(f"SELECT set_config('{GUC}', :v, true)")
_PENDING = "flask_tenants.citus.pending"


def create_tenant_schema(
    conn: Connection,
    st: TenancyState,
    name: str,
    stamp: Sequence[str] = (),
    session: Session | None = None,
) -> bool:
    """Create tenant ``name``'s schema and tables in the caller's transaction, as a Citus
    distributed schema when :func:`citus_enabled`; returns whether it is distributed.

    Without Citus this is :func:`flask_tenants.schema.create_tenant_schema`. With a non-superuser
    role the schema is committed first (see the module's docstring); ``session`` (the session
    whose transaction creates the tenant row) lets the library drop it again when that
    transaction does not commit.
    """
    shared = st.settings.shared_schemas
    validate_tenant_name(name, shared)
    tables = st.tenant_tables
    if not citus_enabled(conn, st):
        _plain_create_tenant_schema(conn, name, tables, shared, stamp)
        return False
    role, superuser = conn.execute(_CURRENT_ROLE).one()
    if superuser:
        ensure_reference_tables(conn, st)
        previous = conn.execute(_SHARDING_ON).scalar_one()
        _plain_create_tenant_schema(conn, name, tables, shared, stamp)
        conn.execute(_SHARDING_SET, {"v": previous})
        return True
    _commit_distributed_schema(conn, st, name, role)
    if session is not None:  # checked when the session's transaction ends, however it ends
        _listen_once()
        session.info.setdefault(_PENDING, []).append((conn.engine, st, name, role))
    try:
        create_tenant_tables(conn, name, tables, shared, stamp)
    except BaseException:
        _drop_unless_tenant(conn.engine, st, name, role)
        raise
    if session is None:
        log.warning(
            "tenant %r: its distributed schema was committed before its tables; without a "
            "session the library cannot drop it if the transaction rolls back",
            name,
        )
    return True


_SET_ROLE = text("SELECT set_config('role', :r, true)")


@contextmanager
def _side_connection(engine: Engine, role: str | None = None) -> Iterator[Connection]:
    """A transaction on a connection of its own (a new pool with ``engine``'s settings, closed
    afterwards, so that an app with a small, busy pool cannot deadlock waiting for a second
    connection), running as ``role`` when given (the role of the creating transaction)."""
    side = Engine(engine.pool.recreate(), engine.dialect, engine.url)  # type: ignore[arg-type]
    token = _set(None)
    try:
        with side.begin() as c:
            if role is not None and role != c.execute(text("SELECT current_user")).scalar():
                c.execute(_SET_ROLE, {"r": role})
            yield c
    finally:
        side.dispose()
        _reset(token)


def _commit_distributed_schema(conn: Connection, st: TenancyState, name: str, role: str) -> None:
    """The non-superuser path: reference tables, then the empty distributed schema, committed
    (as ``role``, the role the creating transaction runs DDL as)."""
    validate_tenant_name(name, st.settings.shared_schemas)
    try:
        with _side_connection(conn.engine, role) as c:
            if schema_exists(c, name):
                raise TenantExistsError(
                    name, hint="A schema with that name already exists; choose another name"
                )
            ensure_reference_tables(c, st)
            c.execute(_SHARDING_ON)
            c.execute(CreateSchema(name))
    except SQLAlchemyError as exc:
        raise SchemaCreationError(name, _db_message(exc)) from exc


def _drop_unless_tenant(
    engine: Engine, st: TenancyState, name: str, role: str | None = None
) -> None:
    """Compensating action of the non-superuser path: drop the schema committed for tenant
    ``name`` unless a committed tenant row now owns it. Logs, never raises."""
    tt = st.tenant_model.__table__
    try:
        with _side_connection(engine, role) as c:
            # the creating transaction may still hold a lock on the schema (when it failed in
            # Python rather than in the database): never wait for it; the check at the end of
            # that transaction drops the schema then
            c.execute(text("SELECT set_config('lock_timeout', '3s', true)"))
            owned = c.execute(select(tt.c.name).where(tt.c.name == name)).first()
            if owned is None and schema_exists(c, name):
                c.execute(DropSchema(name, cascade=True))
                log.info("tenant %r was not created: dropped its distributed schema", name)
    except Exception:  # noqa: BLE001 - runs after the transaction; orphan_schemas() finds it
        log.exception(
            "tenant %r was not created, and its distributed schema could not be dropped: "
            "drop it with flask_tenants.citus.drop_orphan_schemas()",
            name,
        )


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    pending = session.info.pop(_PENDING, None)
    for engine, st, name, role in pending or ():
        _drop_unless_tenant(engine, st, name, role)


_listening = False


def _listen_once() -> None:
    """Listen for the end of Session transactions from the first distributed tenant creation
    on (not at import: every session of the process would pay for the listener)."""
    global _listening
    if not _listening:
        from sqlalchemy import event

        event.listen(Session, "after_transaction_end", _after_transaction_end)
        _listening = True


# -- placement ------------------------------------------------------------------------------------

_HAS_METADATA = text("SELECT to_regclass('pg_catalog.pg_dist_schema') IS NOT NULL")
# Straight from the catalog: opens no connection to other nodes, safe inside a transaction
# (the size columns of the citus_schemas / citus_shards views do open connections).
_PLACEMENTS = text(
    """
    SELECT n.nspname, nd.nodename, nd.nodeport
    FROM pg_dist_schema ds
    JOIN pg_namespace n ON n.oid = ds.schemaid
    LEFT JOIN LATERAL (
        SELECT DISTINCT pl.groupid FROM pg_dist_partition p
        JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid
        JOIN pg_dist_placement pl ON pl.shardid = sh.shardid
        WHERE p.colocationid = ds.colocationid) g ON true
    LEFT JOIN pg_dist_node nd ON nd.groupid = g.groupid AND nd.noderole = 'primary'
    ORDER BY 1, 2, 3
    """
)


def _node(host: str | None, port: int | None) -> str:
    return f"{host}:{port}" if host is not None else ""


def tenant_placements(conn: Connection) -> dict[str, str]:
    """``{schema: "host:port"}`` of every distributed schema (``""`` for one without tables);
    ``{}`` without Citus. Tenant schemas that are not distributed are not in it."""
    if not conn.execute(_HAS_METADATA).scalar():
        return {}
    return {schema: _node(host, port) for schema, host, port in conn.execute(_PLACEMENTS)}


def tenant_node(conn: Connection, name: str) -> str | None:
    """The ``"host:port"`` of the worker holding tenant ``name``; None when not distributed."""
    return tenant_placements(conn).get(name)


_NODES = text(
    "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND isactive "
    "AND shouldhaveshards ORDER BY nodeid"
)


def nodes(conn: Connection) -> list[str]:
    """``"host:port"`` of every node that can hold tenants."""
    return [_node(h, p) for h, p in conn.execute(_NODES)]


_SHARD_OF = text(
    """
    SELECT sh.shardid, nd.nodename, nd.nodeport
    FROM pg_dist_schema ds
    JOIN pg_dist_partition p ON p.colocationid = ds.colocationid
    JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid
    JOIN pg_dist_placement pl ON pl.shardid = sh.shardid
    JOIN pg_dist_node nd ON nd.groupid = pl.groupid AND nd.noderole = 'primary'
    WHERE ds.schemaid = to_regnamespace(:s)
    ORDER BY sh.shardid LIMIT 1
    """
)
_MOVE = text(
    "SELECT citus_move_shard_placement(:shard, :src_host, :src_port, :dst_host, :dst_port, "
    "shard_transfer_mode := CAST(:mode AS citus.shard_transfer_mode))"
)


def _split_node(node: str) -> tuple[str, int]:
    host, sep, port = node.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigurationError(f"A node is given as 'host:port', not {node!r}")
    return host, int(port)


@contextmanager
def _autocommit(bind: Engine | Connection) -> Iterator[Connection]:
    """An AUTOCOMMIT connection outside any tenant context (Citus moves and rebalances
    manage their own transactions)."""
    engine = bind.engine
    token = _set(None)
    try:
        with engine.connect() as c:
            yield c.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        _reset(token)


def move_tenant(bind: Engine | Connection, name: str, to: str, mode: str = "auto") -> str:
    """Move tenant ``name``'s schema (all its tables) to node ``to`` (``"host:port"``); returns
    the node it was on. ``mode`` is Citus's ``shard_transfer_mode``: ``'auto'`` (logical
    replication, writes keep flowing; needs ``wal_level = logical``), ``'force_logical'`` or
    ``'block_writes'``. The library keeps serving the tenant during and after the move."""
    dst_host, dst_port = _split_node(to)
    with _autocommit(bind) as c:
        row = c.execute(_SHARD_OF, {"s": name}).first()
        if row is None:
            raise CitusError(
                f"Tenant {name!r} has no distributed tables to move (is TENANTS_CITUS on, and "
                "was the tenant distributed? see flask_tenants.citus.distribute_existing_tenants)"
            )
        shard, src_host, src_port = row
        if (src_host, src_port) != (dst_host, dst_port):
            c.execute(
                _MOVE,
                {
                    "shard": shard,
                    "src_host": src_host,
                    "src_port": src_port,
                    "dst_host": dst_host,
                    "dst_port": dst_port,
                    "mode": mode,
                },
            )
    return _node(src_host, src_port)


def rebalance(bind: Engine | Connection, wait: bool = True) -> None:
    """Start Citus's background rebalancer (``citus_rebalance_start``), which moves whole
    distributed schemas between nodes to even out shard counts; with ``wait``, block until it is
    done (``citus_rebalance_wait``). Progress: ``SELECT * FROM citus_rebalance_status()``."""
    with _autocommit(bind) as c:
        c.execute(text("SELECT citus_rebalance_start()"))
        if wait:
            c.execute(text("SELECT citus_rebalance_wait()"))


# -- an existing fleet ---------------------------------------------------------------------------

_DISTRIBUTED = text(
    "SELECT n.nspname FROM pg_dist_schema ds JOIN pg_namespace n ON n.oid = ds.schemaid"
)
_DISTRIBUTE = text("SELECT citus_schema_distribute(CAST(:s AS regnamespace))")


@dataclass
class SetupReport:
    """What :func:`setup_citus` did."""

    reference_tables: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _tenant_names(conn: Connection, st: TenancyState) -> list[str]:
    tt = st.tenant_model.__table__
    return [r[0] for r in conn.execute(select(tt.c.name).order_by(tt.c.name))]


def distribute_existing_tenants(
    engine: Engine,
    st: TenancyState,
    names: Sequence[str] | None = None,
    on_result: Callable[[str, str | None], None] | None = None,
) -> SetupReport:
    """Make existing tenant schemas distributed (``citus_schema_distribute``), each in its own
    transaction; tenants already distributed are skipped.

    Each call copies the tenant's rows to a worker and locks the tenant's tables (and the
    reference tables they point to) until it commits: run it outside request traffic.
    ``on_result(name, error_or_None)`` is called after each tenant.
    """
    report = SetupReport()
    token = _set(None)
    try:
        with engine.connect() as c:
            wanted = list(names) if names is not None else _tenant_names(c, st)
            done = {r[0] for r in c.execute(_DISTRIBUTED)}
            present = {n for n in wanted if schema_exists(c, n)}
            c.rollback()
        for name in wanted:
            if name in done or name not in present:
                continue
            try:
                with engine.begin() as c:
                    c.execute(_DISTRIBUTE, {"s": name})
            except SQLAlchemyError as exc:
                report.failed[name] = _db_message(exc)
                if on_result is not None:
                    on_result(name, report.failed[name])
                continue
            report.distributed.append(name)
            if on_result is not None:
                on_result(name, None)
    finally:
        _reset(token)
    return report


def setup_citus(
    engine: Engine,
    st: TenancyState,
    distribute_existing: bool = True,
    on_result: Callable[[str, str | None], None] | None = None,
) -> SetupReport:
    """Prepare a database for tenants on Citus: make the reference tables (one transaction),
    then, with ``distribute_existing``, distribute every existing tenant schema (one
    transaction each). Idempotent; run it once when turning Citus on, outside request traffic.
    """
    token = _set(None)
    try:
        with engine.begin() as c:
            if not citus_info(c, refresh=True).installed:
                raise CitusError(
                    "The database has no 'citus' extension: run CREATE EXTENSION citus on the "
                    "coordinator (and add the workers with citus_add_node) first."
                )
            converted = ensure_reference_tables(c, st)
    finally:
        _reset(token)
    report = (
        distribute_existing_tenants(engine, st, on_result=on_result)
        if distribute_existing
        else SetupReport()
    )
    report.reference_tables = converted
    return report


def orphan_schemas(conn: Connection, st: TenancyState) -> list[str]:
    """Distributed schemas that no tenant row owns (left by a crash in the non-superuser
    creation path, or made by hand)."""
    if not conn.execute(_HAS_METADATA).scalar():
        return []
    tenants = set(_tenant_names(conn, st))
    return sorted(r[0] for r in conn.execute(_DISTRIBUTED) if r[0] not in tenants)


def drop_orphan_schemas(engine: Engine, st: TenancyState) -> list[str]:
    """Drop the schemas of :func:`orphan_schemas` (each rechecked in its own transaction)."""
    token = _set(None)
    try:
        with engine.connect() as c:
            orphans = orphan_schemas(c, st)
            c.rollback()
    finally:
        _reset(token)
    for name in orphans:
        _drop_unless_tenant(engine, st, name)
    return orphans


# -- CLI: flask tenants citus ... ---------------------------------------------------------------


def make_citus_cli(group_class: Any = None) -> Any:
    """The ``citus`` command group (``setup``, ``nodes``, ``move``, ``rebalance``, ``orphans``),
    built on ``group_class`` (Flask's ``AppGroup`` by default, Quart's for a Quart app)."""
    import click

    if group_class is None:
        from flask.cli import AppGroup

        group_class = AppGroup

    citus_cli: click.Group = group_class(
        "citus", help="Tenants on a Citus cluster: setup, placement, moves."
    )

    def engine_and_state() -> tuple[Engine, TenancyState]:
        from .migrations import sync_engine
        from .state import current_state

        st = current_state()
        return sync_engine(st), st

    @citus_cli.command("setup")
    @click.option(
        "--no-distribute", is_flag=True, help="Only make the reference tables, not the tenants."
    )
    def setup_cmd(no_distribute: bool) -> None:
        """Make reference tables and distribute existing tenant schemas (idempotent)."""
        engine, st = engine_and_state()

        def show(name: str, error: str | None) -> None:
            click.echo(f"  {name}: {'FAILED ' + error if error else 'distributed'}")

        try:
            report = setup_citus(engine, st, not no_distribute, on_result=show)
        except FlaskTenantsError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Reference tables made now: {', '.join(report.reference_tables) or 'none'}.")
        click.echo(f"Tenants distributed now: {len(report.distributed)}.")
        if report.failed:
            raise click.ClickException(f"{len(report.failed)} tenant(s) failed")

    @citus_cli.command("nodes")
    def nodes_cmd() -> None:
        """Each tenant's node, and the number of tenants per node."""
        engine, st = engine_and_state()
        token = _set(None)
        try:
            with engine.connect() as c:
                placed = tenant_placements(c)
                names = _tenant_names(c, st)
                all_nodes = nodes(c) if placed else []
        finally:
            _reset(token)
        counts = dict.fromkeys(all_nodes, 0)
        for name in names:
            node = placed.get(name)
            click.echo(f"{name}\t{node or '(not distributed)'}")
            if node:
                counts[node] = counts.get(node, 0) + 1
        for node, n in counts.items():
            click.echo(f"# {node}: {n} tenant(s)")

    @citus_cli.command("move")
    @click.argument("name")
    @click.argument("node")
    @click.option(
        "--mode",
        type=click.Choice(["auto", "force_logical", "block_writes"]),
        default="auto",
        show_default=True,
    )
    def move_cmd(name: str, node: str, mode: str) -> None:
        """Move tenant NAME to NODE (host:port, see 'flask tenants citus nodes')."""
        engine, _ = engine_and_state()
        try:
            src = move_tenant(engine, name, node, mode)
        except (FlaskTenantsError, SQLAlchemyError) as exc:
            raise click.ClickException(_db_message(exc)) from exc
        click.echo(f"Moved {name} from {src} to {node}.")

    @citus_cli.command("rebalance")
    @click.option("--no-wait", is_flag=True, help="Start the rebalance and return.")
    def rebalance_cmd(no_wait: bool) -> None:
        """Even out tenants over the nodes (Citus's background rebalancer)."""
        engine, _ = engine_and_state()
        rebalance(engine, wait=not no_wait)
        click.echo("Rebalance started." if no_wait else "Rebalance done.")

    @citus_cli.command("orphans")
    @click.option("--drop", is_flag=True, help="Drop them.")
    def orphans_cmd(drop: bool) -> None:
        """Distributed schemas without a tenant row."""
        engine, st = engine_and_state()
        if drop:
            found = drop_orphan_schemas(engine, st)
        else:
            token = _set(None)
            try:
                with engine.connect() as c:
                    found = orphan_schemas(c, st)
            finally:
                _reset(token)
        click.echo("\n".join(found) if found else "No orphan schemas.")

    return citus_cli
