"""Tenant lifecycle: ORM events that keep schemas in step with tenant rows, and the lifecycle API
as plain functions over a sync ``Session`` (the async door calls them through ``run_sync``).

Adding a tenant and flushing creates its schema and tables; changing its name renames the schema
and its domains; deleting it drops the schema. All of it happens on the flush's own connection,
inside the caller's transaction, so a rollback undoes the schema change too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, event, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapper, Session, attributes, object_session

from .citus import create_tenant_schema  # plain schema, or a Citus distributed one (citus.py)
from .exceptions import (
    ConfigurationError,
    DomainError,
    TenantExistsError,
    TenantNotFoundError,
)
from .naming import normalize_domain, validate_tenant_name
from .resolution import invalidate_all, watched_tables
from .schema import drop_tenant_schema, rename_tenant_schema
from .signals import record, record_tenant_update, tenant_created, tenant_deleted
from .state import TenancyState, state_for_model

__all__ = [
    "register_model_events",
    "create_tenant",
    "rename_tenant",
    "set_tenant_active",
    "delete_tenant",
    "add_domain",
    "remove_domain",
    "set_primary_domain",
    "get_tenant",
]

_CHANGED = "flask_tenants.changed"
_registered: set[type] = set()


def _mark_changed(target: Any) -> None:
    sess = object_session(target)
    if sess is not None:
        sess.info[_CHANGED] = True


def _state(target: Any) -> TenancyState:
    st = state_for_model(type(target))
    if st is None:
        raise ConfigurationError(
            f"{type(target).__name__} is not the tenant model of an initialised tenancy"
        )
    return st


def _after_insert(mapper: Mapper[Any], conn: Connection, target: Any) -> None:
    st = _state(target)
    create_tenant_schema(conn, st, target.name, st.tenant_heads(), object_session(target))
    _mark_changed(target)
    record(object_session(target), tenant_created, tenant=target.name)  # sent after commit


def _after_update(mapper: Mapper[Any], conn: Connection, target: Any) -> None:
    hist = attributes.get_history(target, "name")
    _mark_changed(target)
    record_tenant_update(target)  # renamed/(de)activated signals, sent after commit
    if not hist.deleted or not hist.added or hist.deleted[0] == hist.added[0]:
        return
    old, new = hist.deleted[0], hist.added[0]
    st = _state(target)
    rename_tenant_schema(conn, old, new, st.settings.shared_schemas)
    if st.domain_model is not None and "tenant_name" in st.domain_model.__table__.c:
        dt = st.domain_model.__table__
        conn.execute(update(dt).where(dt.c.tenant_name == old).values(tenant_name=new))


def _before_delete(mapper: Mapper[Any], conn: Connection, target: Any) -> None:
    # Before the row's DELETE: tenant tables may reference the tenant row (a foreign key to
    # tenants.id); with the schema gone first, deleting the row does not violate them. A failed
    # DELETE still rolls the drop back with the transaction.
    st = _state(target)
    drop_tenant_schema(conn, target.name, st.settings.shared_schemas)
    _mark_changed(target)
    record(object_session(target), tenant_deleted, tenant=target.name)  # sent after commit


def _domain_changed(mapper: Mapper[Any], conn: Connection, target: Any) -> None:
    _mark_changed(target)


def register_model_events(tenant_model: type, domain_model: type | None) -> None:
    """Attach the schema lifecycle to ``tenant_model`` (once per class)."""
    # bulk UPDATE/DELETE fire no mapper events: the engine's Connection class watches these
    # tables instead (flask_tenants.isolation) and clears the resolution cache at commit
    for model in (tenant_model, domain_model):
        table = getattr(model, "__table__", None)
        if table is not None:
            watched_tables.add(table)
    if tenant_model not in _registered:
        event.listen(tenant_model, "after_insert", _after_insert, propagate=True)
        event.listen(tenant_model, "after_update", _after_update, propagate=True)
        event.listen(tenant_model, "before_delete", _before_delete, propagate=True)
        _registered.add(tenant_model)
    if domain_model is not None and domain_model not in _registered:
        for name in ("after_insert", "after_update", "after_delete"):
            event.listen(domain_model, name, _domain_changed, propagate=True)
        _registered.add(domain_model)


@event.listens_for(Session, "after_commit")
def _invalidate_after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        invalidate_all()


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_CHANGED, None)


# -- the lifecycle API over a Session (no commit: the door wraps the transaction) ---------------


def get_tenant(session: Session, st: TenancyState, name: str) -> Any:
    """The tenant called ``name``, or TenantNotFoundError."""
    validate_tenant_name(name, st.settings.shared_schemas)
    tenant = session.execute(
        select(st.tenant_model).where(st.tenant_model.name == name)  # type: ignore[attr-defined]
    ).scalar_one_or_none()
    if tenant is None:
        raise TenantNotFoundError(tenant=name, message=f"There is no tenant named {name!r}.")
    return tenant


def _require_domains(st: TenancyState) -> Any:
    if st.domain_model is None:
        raise ConfigurationError("This tenancy has no domain model: pass domain_model=Domain.")
    return st.domain_model


def _domain_taken(session: Session, st: TenancyState, domain: str) -> bool:
    dm = _require_domains(st)
    return (
        session.execute(
            select(dm.__table__.c.id).where(dm.__table__.c.domain_name == domain)  # type: ignore[attr-defined]
        ).first()
        is not None
    )


def _check_domain_free(session: Session, st: TenancyState, host: str, owner: str) -> None:
    """DomainError unless ``host`` can be given to tenant ``owner``.

    A Domain row wins over the subdomain fallback, so giving ``bob.example.com`` to tenant
    ``alice`` would silently take tenant ``bob``'s traffic: refused.
    """
    if _domain_taken(session, st, host):
        raise DomainError(f"The domain {host!r} already belongs to a tenant.")
    label = st.resolver.fallback_name(host)
    if label is not None and label != owner:
        t = st.tenant_model.__table__
        if session.execute(select(t.c.id).where(t.c.name == label)).first() is not None:
            raise DomainError(
                f"The domain {host!r} is how tenant {label!r} is reached (its first label names "
                f"that tenant), so it cannot be given to tenant {owner!r}."
            )


def _tenant_host(st: TenancyState, domain: str) -> str:
    """``domain`` normalised, or DomainError when requests for it would never reach a tenant."""
    host = normalize_domain(domain)
    if st.resolver.classify(host)[0] != "lookup":
        raise DomainError(
            f"The domain {host!r} is served from the public schema (no dot, a first label in "
            "TENANTS_NON_TENANT_SUBDOMAINS, or one of TENANTS_PUBLIC_DOMAINS), so it can never "
            "select a tenant: use another host name, or change those settings."
        )
    return host


def _new_domain(st: TenancyState, tenant: Any, domain: str, primary: bool) -> Any:
    dm = _require_domains(st)
    values: dict[str, Any] = {"domain_name": domain, "is_primary": primary}
    cols = dm.__table__.c  # type: ignore[attr-defined]
    if "tenant_name" in cols:
        values["tenant_name"] = tenant.name
    if "tenant_id" in cols:
        values["tenant_id"] = tenant.id
    return dm(**values)


def create_tenant(
    session: Session, st: TenancyState, name: str, domains: Iterable[str] = (), **attrs: Any
) -> Any:
    """Add tenant ``name`` with its schema, tables and ``domains`` (the first one primary)."""
    validate_tenant_name(name, st.settings.shared_schemas)
    hosts = [_tenant_host(st, d) for d in domains]
    if len(set(hosts)) != len(hosts):
        raise DomainError(f"The same domain is given twice: {hosts}")
    for h in hosts:
        _check_domain_free(session, st, h, name)
    exists = session.execute(
        select(st.tenant_model.__table__.c.id).where(st.tenant_model.__table__.c.name == name)  # type: ignore[attr-defined]
    ).first()
    if exists is not None:
        raise TenantExistsError(name, hint="A tenant with that name already exists")
    tenant = st.tenant_model(name=name, **attrs)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise TenantExistsError(name, exc.orig or exc) from exc
    for i, h in enumerate(hosts):
        session.add(_new_domain(st, tenant, h, primary=(i == 0)))
    if hosts:
        session.flush()
    return tenant


def rename_tenant(session: Session, st: TenancyState, old: str, new: str) -> Any:
    """Rename tenant ``old`` to ``new``: row, schema and domains."""
    validate_tenant_name(new, st.settings.shared_schemas)
    tenant = get_tenant(session, st, old)
    taken = session.execute(
        select(st.tenant_model.__table__.c.id).where(st.tenant_model.__table__.c.name == new)  # type: ignore[attr-defined]
    ).first()
    if taken is not None:
        raise TenantExistsError(new, hint="A tenant with that name already exists")
    tenant.name = new
    session.flush()
    return tenant


def set_tenant_active(session: Session, st: TenancyState, name: str, active: bool) -> Any:
    """Activate or deactivate tenant ``name`` (its model needs a ``deactivated`` column)."""
    if not st.has_deactivated:
        raise ConfigurationError(
            f"{st.tenant_model.__name__} has no 'deactivated' column, so tenants cannot be "
            "deactivated. Add: deactivated = db.Column(db.Boolean(), nullable=False, "
            "default=False) and migrate."
        )
    tenant = get_tenant(session, st, name)
    tenant.deactivated = not active
    session.flush()
    return tenant


def delete_tenant(session: Session, st: TenancyState, name: str) -> None:
    """Delete tenant ``name``: its domains, its row and its schema."""
    tenant = get_tenant(session, st, name)
    if st.domain_model is not None:
        dt = st.domain_model.__table__  # type: ignore[attr-defined]
        if "tenant_name" in dt.c:
            session.execute(delete(dt).where(dt.c.tenant_name == name))
        elif "tenant_id" in dt.c:
            session.execute(delete(dt).where(dt.c.tenant_id == tenant.id))
        session.info[_CHANGED] = True
    session.delete(tenant)
    session.flush()


def add_domain(
    session: Session, st: TenancyState, name: str, domain: str, primary: bool = False
) -> Any:
    """Give tenant ``name`` another host name."""
    host = _tenant_host(st, domain)
    tenant = get_tenant(session, st, name)
    _check_domain_free(session, st, host, name)
    if primary:
        _clear_primary(session, st, name)
    d = _new_domain(st, tenant, host, primary)
    session.add(d)
    session.flush()
    return d


def _clear_primary(session: Session, st: TenancyState, name: str) -> None:
    dt = _require_domains(st).__table__  # type: ignore[attr-defined]
    session.execute(update(dt).where(dt.c.tenant_name == name).values(is_primary=False))


def _domain_row(session: Session, st: TenancyState, domain: str) -> Any:
    dm = _require_domains(st)
    host = normalize_domain(domain)
    d = session.execute(
        select(dm).where(dm.__table__.c.domain_name == host)  # type: ignore[attr-defined]
    ).scalar_one_or_none()
    if d is None:
        raise DomainError(f"No tenant has the domain {host!r}.")
    return d


def remove_domain(session: Session, st: TenancyState, domain: str) -> None:
    """Remove a host name from its tenant."""
    session.delete(_domain_row(session, st, domain))
    session.flush()


def set_primary_domain(session: Session, st: TenancyState, domain: str) -> Any:
    """Make ``domain`` its tenant's primary domain."""
    d = _domain_row(session, st, domain)
    _clear_primary(session, st, d.tenant_name)
    d.is_primary = True
    session.flush()
    return d
