"""``flask tenants ...``: operate a fleet of tenants from the command line.

Every command goes through the lifecycle API (:mod:`flask_tenants.lifecycle`) or the migration
runner (:mod:`flask_tenants.migrations`); nothing here talks SQL of its own except reading the
listing. Commands read the tenancy state of the app (``current_state()``, which knows Flask's and
Quart's app contexts) and never Flask's ``g``, so :func:`make_cli` builds the same group on
another framework's ``AppGroup`` (``make_cli(quart.cli.AppGroup)``).

Errors the user can fix (unknown tenant, invalid name, duplicate domain, no database) are printed
as one ``Error: ...`` line with exit code 1, never as a traceback. Long work shows a progress bar
on stderr and ends with a summary; the exit code is 1 when any tenant failed, 130 when interrupted.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from flask.cli import AppGroup
from sqlalchemy import Boolean, Float, Integer, Numeric, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from . import lifecycle
from ._frameworks import current_app_or_none
from .citus import make_citus_cli, tenant_placements  # Citus: each tenant's node, citus commands
from .context import _reset, _set
from .doctor import register_doctor
from .exceptions import FlaskTenantsError
from .migrations import (
    MigrationReport,
    TenantResult,
    downgrade_tenants,
    init_tenant_migrations,
    make_revision,
    migrate_tenants,
    model_drift,
    read_revisions,
    stamp_tenants,
    sync_engine,
)
from .schema import check_consistency
from .state import TenancyState, current_state

__all__ = ["tenants_cli", "register_cli", "make_cli", "run_in_transaction"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# -- plumbing ------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    else:
        text = str(exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text


def _friendly(fn: F) -> F:
    """Turn the errors a user can fix into one ``Error:`` line (exit 1), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except FlaskTenantsError as exc:
            raise click.ClickException(_one_line(exc)) from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(f"Database error: {_one_line(exc)}") from exc

    return wrapper  # type: ignore[return-value]


def _session_maker(state: TenancyState) -> Callable[..., Session]:
    """A maker of sync Sessions on the tenancy's database (the app's own for a sync app)."""
    if not getattr(state, "is_async", False) and state.session_maker is not None:
        return state.session_maker  # type: ignore[no-any-return]
    maker = getattr(state, "_cli_session_maker", None)
    if maker is None:
        maker = sessionmaker(bind=sync_engine(state))
        state._cli_session_maker = maker  # type: ignore[attr-defined]
    return maker  # type: ignore[no-any-return]


def run_in_transaction(state: TenancyState, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run ``fn(session, state, *args, **kw)`` (a lifecycle function) in one transaction,
    outside any tenant context; commit, or roll back and re-raise."""
    session = _session_maker(state)(expire_on_commit=False)
    token = _set(None)
    try:
        result = fn(session, state, *args, **kw)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        _reset(token)


@contextmanager
def _progress(length: int, label: str) -> Iterator[Callable[[str | None], None]]:
    """A click progress bar on stderr with counts and elapsed time; yields ``step(item)``."""
    t0 = time.perf_counter()

    def show(item: str | None) -> str:
        elapsed = f"{time.perf_counter() - t0:.1f}s"
        return f"{elapsed}  {item}" if item else elapsed

    err = sys.stderr  # CliRunner swaps it, so tests see the bar too
    bar: Any = click.progressbar(
        length=length, label=label, show_pos=True, item_show_func=show, file=err
    )
    with bar:

        def step(item: str | None) -> None:
            bar.update(1, item)

        yield step


def _short(revs: Sequence[str]) -> str:
    return ",".join(r[:12] for r in revs)


def _print_failures(results: Iterable[TenantResult], what: str) -> None:
    failed = [r for r in results if r.status == "failed"]
    if failed:
        click.echo(f"Failed ({len(failed)}):")
        for r in failed:
            where = f" ({what} {_short(r.before) or 'no revision'})" if what else ""
            click.echo(f"  {r.name}: {r.error}{where}")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _parse_sets(state: TenancyState, pairs: Sequence[str]) -> dict[str, Any]:
    cols = state.tenant_model.__table__.c
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        fixed = ("id", "name", "created_at", "updated_at")
        if key not in cols or key in fixed:
            settable = ", ".join(c.name for c in cols if c.name not in fixed) or "none"
            raise click.BadParameter(
                f"{state.tenant_model.__name__} has no settable column {key!r} "
                f"(columns: {settable})",
                param_hint="--set",
            )
        ctype = cols[key].type
        value: Any = raw
        try:
            if isinstance(ctype, Boolean):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1", "yes")
            elif isinstance(ctype, Integer):
                value = int(raw)
            elif isinstance(ctype, (Float, Numeric)):
                value = float(raw)
        except ValueError:
            raise click.BadParameter(
                f"{raw!r} is not a valid value for {key} ({ctype})", param_hint="--set"
            ) from None
        out[key] = value
    return out


# -- the commands ----------------------------------------------------------------------------


def _define(group: click.Group) -> None:  # noqa: C901 - one place that lists every command
    command = group.command
    sub = group.group

    @command("create")
    @click.argument("name")
    @click.option(
        "--domain", "-d", "domains", multiple=True, help="Host name (repeat; first is primary)."
    )
    @click.option(
        "--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Tenant column value."
    )
    @_friendly
    def create_cmd(name: str, domains: tuple[str, ...], sets: tuple[str, ...]) -> None:
        """Create tenant NAME: row, schema, tables (at the migration head) and domains."""
        state = current_state()
        attrs = _parse_sets(state, sets)
        t0 = time.perf_counter()
        run_in_transaction(state, lifecycle.create_tenant, name, list(domains), **attrs)
        ms = (time.perf_counter() - t0) * 1000
        extra = f" with domain(s) {', '.join(domains)}" if domains else ""
        click.echo(f"Created tenant {name!r}{extra} in {ms:.0f} ms.")

    @command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @_friendly
    def list_cmd(as_json: bool) -> None:
        """List tenants: domains, primary domain, status and migration revision."""
        state = current_state()
        rows = list_tenants(state)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            click.echo("No tenants.")
            return
        table_rows = [
            [
                r["name"],
                ", ".join(r["domains"]) or "-",
                r["primary_domain"] or "-",
                "deactivated" if r["deactivated"] else "active",
                r["revision_display"],
            ]
            for r in rows
        ]
        headers = ["NAME", "DOMAINS", "PRIMARY", "STATUS", "REVISION"]
        if any(r["node"] for r in rows):  # tenants on a Citus cluster: the node of each one
            headers.append("NODE")
            for table_row, r in zip(table_rows, rows, strict=True):
                table_row.append(r["node"] or "(not distributed)")
        click.echo(_table(headers, table_rows))
        click.echo(f"{len(rows)} tenant(s).")

    @command("rename")
    @click.argument("old")
    @click.argument("new")
    @_friendly
    def rename_cmd(old: str, new: str) -> None:
        """Rename tenant OLD to NEW: row, schema and domains, atomically."""
        state = current_state()
        run_in_transaction(state, lifecycle.rename_tenant, old, new)
        click.echo(f"Renamed tenant {old!r} to {new!r}.")

    @command("deactivate")
    @click.argument("name")
    @_friendly
    def deactivate_cmd(name: str) -> None:
        """Deactivate tenant NAME (its hosts answer 403; data is kept)."""
        run_in_transaction(current_state(), lifecycle.set_tenant_active, name, False)
        click.echo(f"Deactivated tenant {name!r}.")

    @command("activate")
    @click.argument("name")
    @_friendly
    def activate_cmd(name: str) -> None:
        """Re-activate tenant NAME."""
        run_in_transaction(current_state(), lifecycle.set_tenant_active, name, True)
        click.echo(f"Activated tenant {name!r}.")

    @command("delete")
    @click.argument("name")
    @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
    @_friendly
    def delete_cmd(name: str, yes: bool) -> None:
        """Delete tenant NAME: its domains, its row and its schema WITH ALL ITS DATA."""
        state = current_state()
        run_in_transaction(state, lifecycle.get_tenant, name)  # unknown name: error, no prompt
        if not yes:
            click.confirm(
                f"Delete tenant {name!r} and drop its schema with all its data?", abort=True
            )
        run_in_transaction(state, lifecycle.delete_tenant, name)
        click.echo(f"Deleted tenant {name!r}.")

    @sub("domains")
    def domains_grp() -> None:
        """Add, remove and choose the primary domain of tenants."""

    @domains_grp.command("add")
    @click.argument("name")
    @click.argument("host")
    @click.option("--primary", is_flag=True, help="Make it the tenant's primary domain.")
    @_friendly
    def domains_add(name: str, host: str, primary: bool) -> None:
        """Give tenant NAME the domain HOST."""
        d = run_in_transaction(current_state(), lifecycle.add_domain, name, host, primary)
        click.echo(f"Added domain {d.domain_name!r} to tenant {name!r}.")

    @domains_grp.command("remove")
    @click.argument("host")
    @_friendly
    def domains_remove(host: str) -> None:
        """Remove the domain HOST from its tenant."""
        run_in_transaction(current_state(), lifecycle.remove_domain, host)
        click.echo(f"Removed domain {host!r}.")

    @domains_grp.command("set-primary")
    @click.argument("host")
    @_friendly
    def domains_set_primary(host: str) -> None:
        """Make HOST its tenant's primary domain."""
        d = run_in_transaction(current_state(), lifecycle.set_primary_domain, host)
        click.echo(f"{d.domain_name!r} is now the primary domain of tenant {d.tenant_name!r}.")

    # -- migrations ------------------------------------------------------------------------

    @command("migrate")
    @click.option("--tenant", "-t", "names", multiple=True, help="Only this tenant (repeat).")
    @click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1, max=64),
        default=1,
        show_default=True,
        help="Worker processes, each with its own connection (needs fork; else sequential).",
    )
    @_friendly
    def migrate_cmd(names: tuple[str, ...], jobs: int) -> None:
        """Bring every tenant schema (or the --tenant ones) to the tenant migrations' head.

        Tenants already at head are skipped (one query reads every revision); each tenant is
        upgraded in its own transaction, so a failure rolls back that tenant only. Re-running
        after a failure or an interrupt does only what is left.
        """
        report = run_migrate(current_state(), list(names) or None, jobs)
        if report.interrupted:
            raise click.exceptions.Exit(130)
        if not report.ok:
            raise click.exceptions.Exit(1)

    @command("stamp")
    @click.argument("revision")
    @click.option("--tenant", "-t", "names", multiple=True, help="Only this tenant (repeat).")
    @click.option("--all", "all_", is_flag=True, help="Every tenant.")
    @_friendly
    def stamp_cmd(revision: str, names: tuple[str, ...], all_: bool) -> None:
        """Record REVISION (e.g. head) as the tenants' migration state, running no SQL
        migration: for tenants created before tenant migrations were set up."""
        if bool(names) == all_:
            raise click.UsageError("Give --tenant NAME (repeatable) or --all.")
        results = stamp_tenants(current_state(), revision, list(names) or None)
        done = sum(r.status == "done" for r in results)
        click.echo(
            f"Stamped {done} tenant(s) at {revision}, "
            f"{sum(r.status == 'skipped' for r in results)} already there, "
            f"{sum(r.status == 'failed' for r in results)} failed."
        )
        _print_failures(results, "")
        if any(r.status == "failed" for r in results):
            raise click.exceptions.Exit(1)

    @command("downgrade", context_settings={"ignore_unknown_options": True})  # REVISION -1
    @click.argument("revision")
    @click.option("--tenant", "-t", "names", multiple=True, help="Only this tenant (repeat).")
    @click.option("--all", "all_", is_flag=True, help="Every tenant.")
    @_friendly
    def downgrade_cmd(revision: str, names: tuple[str, ...], all_: bool) -> None:
        """Run the tenant migrations' downgrade() down to REVISION (-1, an id, base) in the
        --tenant ones or --all, one transaction per tenant."""
        if bool(names) == all_:
            raise click.UsageError("Give --tenant NAME (repeatable) or --all.")
        results = downgrade_tenants(current_state(), revision, list(names) or None)
        n_done = sum(r.status == "done" for r in results)
        n_skip = sum(r.status == "skipped" for r in results)
        n_fail = sum(r.status == "failed" for r in results)
        click.echo(f"Downgraded {n_done}, skipped {n_skip}, failed {n_fail}.")
        _print_failures(results, "stays at")
        if n_fail:
            raise click.exceptions.Exit(1)

    @command("revision")
    @click.option("--message", "-m", default=None, help="Revision message.")
    @click.option(
        "--autogenerate/--empty",
        default=True,
        show_default=True,
        help="Compare the tenant models with the migrations (default), or write an empty file.",
    )
    @click.option("--rev-id", default=None, help="Revision id to use instead of a random one.")
    @_friendly
    def revision_cmd(message: str | None, autogenerate: bool, rev_id: str | None) -> None:
        """Write a TENANT migration (it runs in every tenant schema). Public tables: use
        'flask db migrate'."""
        path = make_revision(current_state(), message, autogenerate=autogenerate, rev_id=rev_id)
        if path is None:
            click.echo("No changes in the tenant tables; no revision written.")
        else:
            click.echo(f"Wrote tenant revision {path}")

    @command("init-migrations")
    @click.option(
        "--directory",
        default=None,
        help="Where to create it (default: tenants/ in Flask-Migrate's directory).",
    )
    @_friendly
    def init_migrations_cmd(directory: str | None) -> None:
        """Create the tenant migration directory (env.py, script.py.mako, versions/)."""
        state = current_state()
        if directory is None:
            if state.migrations is None:
                raise click.UsageError(
                    "No Flask-Migrate on this app and no TENANTS_MIGRATIONS_DIR: pass --directory."
                )
            directory = str(state.migrations.directory)
        for path in init_tenant_migrations(directory):
            click.echo(f"Wrote {path}")
        app = current_app_or_none()
        if state.migrations is None and app is not None:
            click.echo(f"Set TENANTS_MIGRATIONS_DIR = {directory!r} in the app config.")

    # -- running commands per tenant -------------------------------------------------------

    @command(
        "exec",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )
    @click.option("--tenant", "-t", "names", multiple=True, help="Run in this tenant (repeat).")
    @click.option("--all", "all_", is_flag=True, help="Run in every tenant, one after another.")
    @click.option(
        "--keep-going/--stop-on-error",
        default=True,
        show_default=True,
        help="After a tenant fails, go on with the next one.",
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
    @click.pass_context
    @_friendly
    def exec_cmd(
        ctx: click.Context,
        names: tuple[str, ...],
        all_: bool,
        keep_going: bool,
        args: tuple[str, ...],
    ) -> None:
        """Run a CLI command in a tenant's context: flask tenants exec --tenant acme -- shell.

        Every transaction the command begins runs in the tenant's schema (a fresh app context
        per tenant). With --all, in every tenant in turn, with a summary at the end.
        """
        if bool(names) == all_:
            raise click.UsageError("Give --tenant NAME (repeatable) or --all.")
        state = current_state()
        targets = exec_targets(state, list(names) or None)
        failures = run_exec(ctx, state, targets, list(args), keep_going)
        if failures:
            raise click.exceptions.Exit(1)

    # -- health ----------------------------------------------------------------------------

    @command("check")
    @click.option(
        "--drift/--no-drift",
        default=True,
        show_default=True,
        help="Also compare the tenant models with what the tenant migrations build.",
    )
    @_friendly
    def check_cmd(drift: bool) -> None:
        """Check tenants against the database: schemas, migration revisions, model drift."""
        problems = run_check(current_state(), drift)
        if problems:
            raise click.exceptions.Exit(1)


# -- command bodies (take the state; reusable from other doors and from code) --------------------


def list_tenants(state: TenancyState) -> list[dict[str, Any]]:
    """The rows of ``flask tenants list``: name, domains, primary, status, revision, node (the
    Citus worker holding the tenant; None without Citus)."""
    tt = state.tenant_model.__table__
    cols = [tt.c.name]
    if state.has_deactivated:
        cols.append(tt.c.deactivated)
    engine = sync_engine(state)
    heads = state.tenant_heads() if state.migrations is not None else ()
    has_migrations = state.migrations is not None and state.migrations.exists
    token = _set(None)
    try:
        with engine.connect() as conn:
            tenants = conn.execute(select(*cols).order_by(tt.c.name)).all()
            domains: dict[str, list[tuple[str, bool]]] = {}
            dm = state.domain_model
            if dm is not None:
                dt = dm.__table__
                for tname, dname, primary in conn.execute(
                    select(dt.c.tenant_name, dt.c.domain_name, dt.c.is_primary).order_by(
                        dt.c.tenant_name, dt.c.is_primary.desc(), dt.c.domain_name
                    )
                ):
                    domains.setdefault(tname, []).append((dname, bool(primary)))
            revisions = read_revisions(conn, state) if has_migrations else {}
            nodes = tenant_placements(conn)  # Citus: {schema: "host:port"}; {} without Citus
            conn.rollback()
    finally:
        _reset(token)
    out = []
    for row in tenants:
        name = row[0]
        ds = domains.get(name, [])
        rev = revisions.get(name)
        if not has_migrations:
            display = "-"
        elif rev is None or not rev.has_schema:
            display = "(schema missing)"
        elif not rev.versioned or not rev.revisions:
            display = "(none)" if heads else "-"
        else:
            display = _short(rev.revisions) + (" (head)" if rev.at(heads) else " (behind)")
        out.append(
            {
                "name": name,
                "domains": [d for d, _ in ds],
                "primary_domain": next((d for d, p in ds if p), None),
                "deactivated": bool(row[1]) if state.has_deactivated else False,
                "revisions": list(rev.revisions) if rev is not None else [],
                "at_head": bool(rev.at(heads)) if rev is not None and has_migrations else None,
                "revision_display": display,
                "node": nodes.get(name),
            }
        )
    return out


def run_migrate(
    state: TenancyState, names: list[str] | None = None, jobs: int = 1
) -> MigrationReport:
    """``flask tenants migrate``: the run, its progress bar and its summary."""
    bar: dict[str, Any] = {}
    stack: list[Any] = []

    def on_plan(pending: int, skipped: int) -> None:
        click.echo(
            f"{pending} tenant(s) to migrate, {skipped} already at head "
            f"({_short(state.tenant_heads()) or 'no revisions'}).",
            err=True,
        )
        if pending:
            cm = _progress(pending, "Migrating")
            bar["step"] = cm.__enter__()
            stack.append(cm)

    def on_result(r: TenantResult) -> None:
        step = bar.get("step")
        if step is not None:
            step(f"{r.name} {r.status}")

    try:
        report = migrate_tenants(state, names, jobs, on_plan=on_plan, on_result=on_result)
    finally:
        for cm in stack:
            cm.__exit__(None, None, None)
    n_done, n_skip, n_fail = len(report.done), len(report.skipped), len(report.failed)
    how = f", {report.jobs} jobs" if report.jobs > 1 else ""
    if n_done + n_fail:
        per = report.seconds / (n_done + n_fail) * 1000
        how = f" ({per:.1f} ms per tenant migrated{how})"
    elif how:
        how = f" ({how[2:]})"
    click.echo(
        f"Migrated {n_done}, skipped {n_skip} (at head), failed {n_fail} "
        f"in {report.seconds:.2f} s{how}."
    )
    _print_failures(report.results, "stays at")
    if report.failed:
        click.echo(
            "Fix the cause and run 'flask tenants migrate' again: it does only what is left."
        )
    if report.interrupted:
        click.echo(
            "Interrupted: the tenant in flight was rolled back; run 'flask tenants migrate' "
            "again to finish."
        )
    return report


def exec_targets(state: TenancyState, names: list[str] | None) -> list[str]:
    """The tenants ``exec`` runs in: ``names`` (checked to exist) or all, in name order."""
    if names is not None:
        for n in names:
            run_in_transaction(state, lifecycle.get_tenant, n)
        return list(dict.fromkeys(names))
    tt = state.tenant_model.__table__
    token = _set(None)
    try:
        with sync_engine(state).connect() as conn:
            return [r[0] for r in conn.execute(select(tt.c.name).order_by(tt.c.name))]
    finally:
        _reset(token)


def run_exec(
    ctx: click.Context, state: TenancyState, targets: list[str], args: list[str], keep_going: bool
) -> list[tuple[str, str]]:
    """Invoke the CLI command ``args`` once per tenant in ``targets``; returns the failures."""
    root_ctx = ctx.find_root()
    root = root_ctx.command
    app = current_app_or_none()
    many = len(targets) > 1
    failures: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    for name in targets:
        if many:
            click.echo(f"== {name} ==")
        error = _exec_one(root, root_ctx, app, state, name, args)
        if error is not None:
            failures.append((name, error))
            click.echo(f"Error in tenant {name!r}: {error}", err=True)
            if not keep_going:
                break
    if many or failures:
        ran = len(targets) if keep_going or not failures else targets.index(failures[-1][0]) + 1
        click.echo(
            f"Ran '{' '.join(args)}' in {ran - len(failures)} tenant(s), "
            f"failed in {len(failures)}, in {time.perf_counter() - t0:.2f} s."
        )
        for name, error in failures:
            click.echo(f"  {name}: {error}")
    return failures


def _exec_one(
    root: click.Command,
    root_ctx: click.Context,
    app: Any,
    state: TenancyState,
    name: str,
    args: list[str],
) -> str | None:
    import flask

    binding = state.binding(name)
    fresh = app.app_context() if isinstance(app, flask.Flask) else _nullcontext()
    with fresh:
        token = _set(binding)
        try:
            if isinstance(app, flask.Flask):
                flask.g.tenant = name
                if state.scoped is not None:
                    from .isolation import pin_session

                    pin_session(state.scoped(), binding)
                    flask.g.db_session = state.scoped
            sub = root.make_context(root_ctx.info_name, list(args), obj=root_ctx.obj)
            with sub:
                root.invoke(sub)
        except click.exceptions.Exit as exc:
            if exc.exit_code:
                return f"exit code {exc.exit_code}"
        except click.ClickException as exc:
            return exc.format_message()
        except click.Abort:
            return "aborted"
        except Exception as exc:
            return f"{type(exc).__name__}: {_one_line(exc)}"
        finally:
            _reset(token)
    return None


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def run_check(state: TenancyState, drift: bool = True) -> list[str]:
    """``flask tenants check``: prints findings, returns the problems (empty when healthy)."""
    problems: list[str] = []
    names = [t.name for t in state.tenant_tables]
    token = _set(None)
    try:
        with sync_engine(state).connect() as conn:
            c = check_consistency(
                conn, state.tenant_model.__table__, names, state.settings.shared_schemas
            )
            has_migrations = state.migrations is not None and state.migrations.exists
            revisions = read_revisions(conn, state) if has_migrations else {}
            tt = state.tenant_model.__table__
            count = conn.execute(select(func.count()).select_from(tt)).scalar_one()
            conn.rollback()
    finally:
        _reset(token)
    for n in c.tenants_without_schema:
        problems.append(f"tenant {n!r} has no schema")
    for s in c.orphan_schemas:
        problems.append(f"schema {s!r} holds tenant tables but belongs to no tenant")
    for t in c.tenant_tables_in_shared_schemas:
        problems.append(
            f"tenant table {t} exists in a shared schema (tenant queries may fall to it)"
        )
    if has_migrations:
        heads = state.tenant_heads()
        behind = [r.name for r in revisions.values() if r.has_schema and not r.at(heads)]
        if behind:
            shown = ", ".join(behind[:10]) + (" ..." if len(behind) > 10 else "")
            problems.append(
                f"{len(behind)} tenant(s) not at the migration head: {shown} "
                "(run 'flask tenants migrate')"
            )
        if drift:
            diffs = model_drift(state)
            if diffs:
                problems.append(
                    "the tenant models differ from what the tenant migrations build: "
                    + "; ".join(diffs[:5])
                    + " (run 'flask tenants revision --autogenerate')"
                )
    if problems:
        click.echo(f"{len(problems)} problem(s):")
        for p in problems:
            click.echo(f"  - {p}")
    else:
        click.echo(f"OK: {count} tenant(s), schemas and migrations consistent.")
    return problems


# -- the group -----------------------------------------------------------------------------------


def make_cli(group_cls: type[click.Group] = AppGroup, name: str = "tenants") -> click.Group:
    """The ``tenants`` command group built on ``group_cls`` (Flask's ``AppGroup`` by default;
    another framework's ``AppGroup`` pushes its own app context around each command)."""
    group = group_cls(name, help="Manage tenants: create, list, rename, delete, migrate, exec.")
    _define(group)
    register_doctor(group)  # flask tenants doctor (flask_tenants/doctor.py)
    group.add_command(make_citus_cli(group_cls))  # flask tenants citus ... (flask_tenants/citus.py)
    return group


tenants_cli = make_cli()
_quart_cli: click.Group | None = None


def quart_group_class() -> type[click.Group]:
    """Quart's ``AppGroup`` with every command (and sub-group command) in an app context:
    Quart wraps a command only when asked (``with_appcontext=True``)."""
    from quart.cli import AppGroup as QuartAppGroup

    class QuartTenantsGroup(QuartAppGroup):  # type: ignore[misc]
        def command(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("with_appcontext", True)
            return super().command(*args, **kwargs)

        def group(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("cls", QuartTenantsGroup)
            return super().group(*args, **kwargs)

    return QuartTenantsGroup


def register_cli(app: Any) -> None:
    """Add the ``tenants`` command group to ``app.cli`` (once): ``flask tenants`` on a Flask app,
    ``quart tenants`` on a Quart app (``exec`` is Flask-only: Quart runs each command in an event
    loop of its own)."""
    global _quart_cli
    if "tenants" in app.cli.commands:
        return
    if type(app).__module__.split(".")[0] == "quart":
        if _quart_cli is None:
            _quart_cli = make_cli(quart_group_class())
        app.cli.add_command(_quart_cli)
    else:
        app.cli.add_command(tenants_cli)
