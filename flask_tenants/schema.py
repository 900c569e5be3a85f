"""Schema lifecycle as plain functions over a sync ``Connection`` (the async door runs them
through ``run_sync``).

Every function runs inside the caller's transaction: PostgreSQL DDL is transactional, so when
the transaction rolls back the schema change rolls back with it, and a failure leaves neither a
tenant row nor a half-made schema. Names are validated before any SQL and reach PostgreSQL only
quoted by SQLAlchemy's identifier preparer or as bound parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_mock_engine,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import (
    BLANK_SCHEMA,
    CreateSchema,
    CreateTable,
    DropSchema,
    ExecutableDDLElement,
)
from sqlalchemy.sql.compiler import DDLCompiler

from .exceptions import (
    SchemaCreationError,
    SchemaDropError,
    SchemaRenameError,
    TableCreationError,
    TenantExistsError,
)
from .models import TENANT_SCHEMA_PLACEHOLDER
from .naming import search_path_for, validate_tenant_name

__all__ = [
    "schema_exists",
    "create_tenant_schema",
    "create_tenant_tables",
    "rename_tenant_schema",
    "drop_tenant_schema",
    "external_dependents",
    "Consistency",
    "check_consistency",
    "tenant_ddl",
    "stamp_ddl",
    "VERSION_TABLE",
]

#: The per-schema Alembic version table (the tenant migrations keep one in every tenant schema).
VERSION_TABLE = "alembic_version"


class RenameSchema(ExecutableDDLElement):
    """``ALTER SCHEMA old RENAME TO new`` with both names quoted by the dialect."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new


@compiles(RenameSchema)
def _compile_rename(element: RenameSchema, compiler: DDLCompiler, **kw: Any) -> str:
    p = compiler.preparer
    old, new = p.format_schema(element.old), p.format_schema(element.new)  # type: ignore[no-untyped-call]
    return f"ALTER SCHEMA {old} RENAME TO {new}"


_SCHEMA_EXISTS = text("SELECT to_regnamespace(:s) IS NOT NULL")
_GET_PATH = text("SELECT current_setting('search_path')")
_SET_PATH = text("SELECT set_config('search_path', :p, true)")


def schema_exists(conn: Connection, name: str) -> bool:
    """True when a schema called ``name`` exists."""
    return bool(conn.execute(_SCHEMA_EXISTS, {"s": name}).scalar())


# -- compiled DDL cache -------------------------------------------------------------------------
_ddl_cache: dict[tuple[int, tuple[str, ...], str], list[str]] = {}
_ddl_lock = threading.Lock()


def tenant_ddl(tables: Sequence[Table], dialect: Dialect) -> list[str]:
    """The DDL that ``create_all`` would run for ``tables``, unqualified, compiled once.

    Compiled with the placeholder schema removed, so it creates the tables in the first schema of
    the search_path; foreign keys to shared tables resolve through the rest of the search_path.
    """
    key = (id(tables[0].metadata) if tables else 0, tuple(t.fullname for t in tables), dialect.name)
    cached = _ddl_cache.get(key)
    if cached is not None:
        return cached
    statements: list[str] = []

    def _collect(sql: Any, *multiparams: Any, **params: Any) -> None:
        statements.append(str(sql.compile(dialect=dialect)))

    if tables:
        scratch = _unqualified_copy(tables)
        mock = create_mock_engine(f"{dialect.name}://", _collect)  # type: ignore[arg-type]
        scratch.create_all(mock, tables=[scratch.tables[t.name] for t in tables], checkfirst=False)
    with _ddl_lock:
        _ddl_cache[key] = statements
    return statements


def _unqualified_copy(tables: Sequence[Table]) -> MetaData:
    """Copies of ``tables`` with no schema (placeholder references rewritten), beside copies of
    every other table of their metadata so that foreign keys to shared tables still compile."""
    source = tables[0].metadata
    wanted = {t.key for t in tables}
    scratch = MetaData()

    def referred(table: Table, to_schema: Any, constraint: Any, referred_schema: str | None) -> Any:
        return BLANK_SCHEMA if referred_schema == TENANT_SCHEMA_PLACEHOLDER else referred_schema

    for t in source.sorted_tables:
        if t.key in wanted:
            t.to_metadata(scratch, schema=None, referred_schema_fn=referred)  # type: ignore[arg-type]
    for t in source.sorted_tables:
        if t.key not in wanted and t.name not in scratch.tables:
            t.to_metadata(scratch)
    return scratch


_version = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def stamp_ddl(revisions: Sequence[str], dialect: Dialect) -> list[str]:
    """Alembic's version table, unqualified, holding ``revisions`` (literals quoted by SQLAlchemy),
    so that a tenant built from the models is at the tenant migrations' head."""
    if not revisions:
        return []
    out = [str(CreateTable(_version).compile(dialect=dialect))]
    for rev in revisions:
        stmt = _version.insert().values(version_num=rev)
        out.append(str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
    return out


def _run_script(conn: Connection, statements: Iterable[str]) -> None:
    stmts = [s.strip() for s in statements if s.strip()]
    if not stmts:
        return
    if _multi_statement(conn):
        # one round trip for the whole script (no parameters, so multi-statement is allowed)
        conn.exec_driver_sql(";\n".join(stmts))
    else:
        for s in stmts:
            conn.exec_driver_sql(s)


def create_tenant_tables(
    conn: Connection,
    schema: str,
    tables: Sequence[Table],
    shared_schemas: Iterable[str] = ("public",),
    stamp: Sequence[str] = (),
) -> None:
    """Create ``tables`` (with constraints, indexes, sequences, types) inside ``schema``; with
    ``stamp``, also its migration version table at those revisions (same round trip)."""
    shared = tuple(shared_schemas)
    validate_tenant_name(schema, shared)
    if not tables and not stamp:
        return
    old_path = conn.execute(_GET_PATH).scalar_one()
    conn.execute(_SET_PATH, {"p": search_path_for(schema, shared)})
    try:
        _run_script(conn, [*tenant_ddl(tables, conn.dialect), *stamp_ddl(stamp, conn.dialect)])
    except SQLAlchemyError as exc:
        raise TableCreationError(schema, _db_message(exc)) from exc
    conn.execute(_SET_PATH, {"p": old_path})


def create_tenant_schema(
    conn: Connection,
    name: str,
    tables: Sequence[Table] = (),
    shared_schemas: Iterable[str] = ("public",),
    stamp: Sequence[str] = (),
) -> None:
    """Create the schema of tenant ``name`` and its tables (stamped at the ``stamp`` migration
    revisions), in the caller's transaction."""
    shared = tuple(shared_schemas)
    validate_tenant_name(name, shared)
    if _multi_statement(conn):
        _create_in_one_round_trip(conn, name, tables, shared, stamp)
        return
    if schema_exists(conn, name):
        raise _schema_taken(name)
    try:
        conn.execute(CreateSchema(name))
    except SQLAlchemyError as exc:
        raise SchemaCreationError(name, _db_message(exc)) from exc
    create_tenant_tables(conn, name, tables, shared, stamp)


def _schema_taken(name: str) -> TenantExistsError:
    return TenantExistsError(
        name, hint="A schema with that name already exists; choose another tenant name"
    )


def _multi_statement(conn: Connection) -> bool:
    return conn.dialect.driver in ("psycopg2", "psycopg")


def _literal(conn: Connection, stmt: Any) -> str:
    return str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _create_in_one_round_trip(
    conn: Connection,
    name: str,
    tables: Sequence[Table],
    shared: tuple[str, ...],
    stamp: Sequence[str],
) -> None:
    """Schema, search_path, tables, version stamp and the search_path restored, as one script:
    provisioning time is the server's DDL time plus one round trip."""
    set_path = func.set_config("search_path", literal(search_path_for(name, shared)), True)
    script = [
        "SELECT set_config('flask_tenants.saved_path', current_setting('search_path'), true)",
        str(CreateSchema(name).compile(dialect=conn.dialect)),
        _literal(conn, select(set_path)),
        *tenant_ddl(tables, conn.dialect),
        *stamp_ddl(stamp, conn.dialect),
        "SELECT set_config('search_path', current_setting('flask_tenants.saved_path'), true)",
    ]
    try:
        _run_script(conn, script)
    except DBAPIError as exc:
        orig = exc.orig
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        if code == "42P06":  # duplicate_schema
            raise _schema_taken(name) from exc
        if code == "42501" and "database" in _db_message(exc):  # no CREATE on the database
            raise SchemaCreationError(name, _db_message(exc)) from exc
        raise TableCreationError(name, _db_message(exc)) from exc


def rename_tenant_schema(
    conn: Connection, old: str, new: str, shared_schemas: Iterable[str] = ("public",)
) -> None:
    """Rename the schema of tenant ``old`` to ``new``, in the caller's transaction."""
    shared = tuple(shared_schemas)
    validate_tenant_name(new, shared)
    validate_tenant_name(old, shared)
    if not schema_exists(conn, old):
        raise SchemaRenameError(old, f"schema {old!r} does not exist")
    if schema_exists(conn, new):
        raise SchemaRenameError(old, f"a schema named {new!r} already exists")
    try:
        conn.execute(RenameSchema(old, new))
    except SQLAlchemyError as exc:
        raise SchemaRenameError(old, _db_message(exc)) from exc


# Objects outside the schema that depend on objects inside it. The owner of a column default,
# a view's rewrite rule, a trigger or a policy is its table (pg_identify_object gives no schema
# for those), so a default or a view inside the tenant's own schema is not "outside"; a column of
# another schema's table whose type is the tenant's is, since CASCADE would drop that column.
_DEPENDENTS = text(
    """
    SELECT DISTINCT o.type || ' ' || o.identity
    FROM pg_depend d
    CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) o
    LEFT JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid
    LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid
    LEFT JOIN pg_trigger tg ON d.classid = 'pg_trigger'::regclass AND tg.oid = d.objid
    LEFT JOIN pg_policy po ON d.classid = 'pg_policy'::regclass AND po.oid = d.objid
    LEFT JOIN pg_class owner
      ON owner.oid = COALESCE(ad.adrelid, rw.ev_class, tg.tgrelid, po.polrelid)
    LEFT JOIN pg_namespace owner_ns ON owner_ns.oid = owner.relnamespace
    WHERE d.deptype IN ('n', 'a')
      AND (
        (d.refclassid = 'pg_class'::regclass AND d.refobjid IN (
            SELECT c.oid FROM pg_class c WHERE c.relnamespace = to_regnamespace(:s)))
        OR (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (
            SELECT t.oid FROM pg_type t WHERE t.typnamespace = to_regnamespace(:s)))
        OR (d.refclassid = 'pg_proc'::regclass AND d.refobjid IN (
            SELECT p.oid FROM pg_proc p WHERE p.pronamespace = to_regnamespace(:s)))
      )
      -- pg_identify_object quotes the schema when it needs quotes ("null", "true", "user")
      AND COALESCE(owner_ns.nspname, o.schema) IS DISTINCT FROM :s
      AND COALESCE(owner_ns.nspname, o.schema) IS DISTINCT FROM quote_ident(:s)
    ORDER BY 1
    """
)


def external_dependents(conn: Connection, name: str) -> list[str]:
    """Objects outside schema ``name`` that depend on objects inside it (views, foreign keys)."""
    return [r[0] for r in conn.execute(_DEPENDENTS, {"s": name})]


def drop_tenant_schema(
    conn: Connection,
    name: str,
    shared_schemas: Iterable[str] = ("public",),
    missing_ok: bool = True,
) -> None:
    """Drop the schema of tenant ``name`` and everything in it, in the caller's transaction.

    Refuses (SchemaDropError) when an object in another schema depends on it, because
    ``DROP SCHEMA ... CASCADE`` would then delete another schema's objects too.
    """
    validate_tenant_name(name, tuple(shared_schemas))
    if not schema_exists(conn, name):
        if missing_ok:
            return
        raise SchemaDropError(name, f"schema {name!r} does not exist")
    deps = external_dependents(conn, name)
    if deps:
        raise SchemaDropError(
            name,
            "objects in other schemas depend on it: " + ", ".join(deps[:5]),
            hint="Drop or change those objects first; nothing was dropped",
        )
    try:
        conn.execute(DropSchema(name, cascade=True))
    except SQLAlchemyError as exc:
        raise SchemaDropError(name, _db_message(exc)) from exc


@dataclass
class Consistency:
    """The result of :func:`check_consistency`; ``ok`` when every list is empty."""

    tenants_without_schema: list[str] = field(default_factory=list)
    orphan_schemas: list[str] = field(default_factory=list)
    tenant_tables_in_shared_schemas: list[str] = field(default_factory=list)
    #: ``schema.table`` of tenant tables missing from a tenant's schema (half-made, unmigrated)
    tenants_missing_tables: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.tenants_without_schema
            or self.orphan_schemas
            or self.tenant_tables_in_shared_schemas
            or self.tenants_missing_tables
        )


def check_consistency(
    conn: Connection,
    tenant_table: Table,
    tenant_table_names: Iterable[str] = (),
    shared_schemas: Iterable[str] = ("public",),
) -> Consistency:
    """Compare the tenant table with the catalog.

    * tenants whose schema is missing;
    * orphan schemas: schemas (other than system and shared ones) holding a tenant table but no
      tenant row;
    * tenant tables found in a shared schema (where tenant queries could fall through to);
    * tenant tables missing from a tenant's schema.
    """
    shared = list(shared_schemas)
    names = [
        r[0] for r in conn.execute(tenant_table.select().with_only_columns(tenant_table.c.name))
    ]
    schemas = {
        r[0]
        for r in conn.execute(
            text(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname <> 'information_schema'"
            )
        )
    }
    table_names = list(tenant_table_names)
    result = Consistency()
    result.tenants_without_schema = sorted(n for n in names if n not in schemas)
    if table_names:
        holders = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                    "AND c.relname = ANY(:t)"
                ),
                {"t": table_names},
            )
        }
        result.orphan_schemas = sorted(
            s for s in holders if s not in set(names) and s not in shared
        )
        result.tenant_tables_in_shared_schemas = sorted(
            f"{s}.{t}"
            for s, t in conn.execute(
                text(
                    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                    "AND c.relname = ANY(:t) AND n.nspname = ANY(:s)"
                ),
                {"t": table_names, "s": shared},
            )
        )
        present = {
            (s, t)
            for s, t in conn.execute(
                text(
                    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                    "AND c.relname = ANY(:t) AND n.nspname = ANY(:n)"
                ),
                {"t": table_names, "n": names},
            )
        }
        result.tenants_missing_tables = sorted(
            f"{n}.{t}" for n in names if n in schemas for t in table_names if (n, t) not in present
        )
    return result


def _db_message(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip().splitlines()[0]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
