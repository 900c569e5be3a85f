"""pytest plugin shipped with flask-tenants (entry point ``pytest11``, active once installed).

Fixtures (all prefixed ``tenants_`` so they never clash with a project's own):

``tenants_database_url`` (session)
    The URL of a throwaway database: a new database on the server of
    ``TENANTS_TEST_DATABASE_URL`` when set, else on an embedded PostgreSQL started on first use
    (``pip install 'flask-tenants[embedded]'``). Dropped at the end of the session. Nothing is
    started unless a test uses this fixture (directly or through the others).
``tenants_app``
    **Define it yourself** (in ``conftest.py``): your Flask or Quart app configured with
    ``tenants_database_url`` and its shared tables created. The fixtures below use it.
``tenants_factory``
    ``tenants_factory(name=None, domains=(), **attrs) -> name``: a tenant ready for the test.
    Fast: a tenant created by an earlier test is *reused* -- its tenant tables are emptied with
    one ``TRUNCATE ... RESTART IDENTITY CASCADE`` -- instead of creating a schema per test.
    Anonymous tenants are ``tenant1``, ``tenant2``... in the order a test asks for them, so a
    suite of 100 tests using two tenants each creates two schemas. Its host is
    ``<name>.tenants.test`` (a Domain row, when the tenancy has a domain model).
    The shared (public) tables are not reset: tests own what they put there.
``tenants_client``
    ``tenants_client(name) -> client``: the app's test client with every request sent to the
    tenant's host (Flask: ``client.get('/x')``; Quart: ``await client.get('/x')``).

And a helper, :func:`assert_tenant_isolation` (``assert_tenant_isolation_async`` for Quart):
creates two tenants, seeds each, requests the same view in both and fails when either response
shows the other's data::

    from flask_tenants.testing.plugin import assert_tenant_isolation

    def test_invoices_are_isolated(tenants_app):
        def seed(session, tenant):
            session.add(Invoice(customer=f"customer-of-{tenant}"))
            return f"customer-of-{tenant}"     # what only this tenant's page may show

        assert_tenant_isolation(tenants_app, "/invoices", seed)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = [
    "assert_tenant_isolation",
    "assert_tenant_isolation_async",
    "ensure_tenant",
    "tenant_host",
    "TenantClient",
]

HOST_SUFFIX = "tenants.test"


def tenant_host(name: str) -> str:
    """The host the plugin gives tenant ``name``."""
    return f"{name.replace('_', '-')}.{HOST_SUFFIX}"


def _state(app: Any) -> Any:
    state = app.extensions.get("flask_tenants")
    if state is None:
        raise pytest.UsageError(
            "tenants_app is not initialised with flask-tenants (FlaskTenants/QuartTenants)."
        )
    return state


def _sync_engine(state: Any) -> Any:
    """The app's engine; for an async app a psycopg twin without a pool (no connection is
    left open between tests, so a suite running with ResourceWarnings as errors stays clean)."""
    engine = state.engine
    if not hasattr(engine, "sync_engine"):
        return engine
    twin = getattr(state, "_tenants_plugin_engine", None)
    if twin is None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from ..isolation import install

        twin = create_engine(engine.url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
        install(twin)
        state._tenants_plugin_engine = twin
    return twin


@contextmanager
def _no_tenant() -> Iterator[None]:
    from ..context import _reset, _set

    token = _set(None)
    try:
        yield
    finally:
        _reset(token)


def _empty_tenant(engine: Any, schema: str, tables: list[str]) -> None:
    """Empty the tenant's tables: one probe finds the non-empty ones, one TRUNCATE empties
    them (TRUNCATE costs ~8 ms per table even when empty, so empty tables are left alone)."""
    from sqlalchemy import exists, literal, select, table, text, union_all

    if not tables:
        return
    prep = engine.dialect.identifier_preparer
    parts = [
        select(literal(i)).where(exists().select_from(table(t, schema=schema)))
        for i, t in enumerate(tables)
    ]
    probe = parts[0] if len(parts) == 1 else union_all(*parts)
    with _no_tenant(), engine.begin() as conn:
        full = [tables[r[0]] for r in conn.execute(probe)]
        if full:
            names = ", ".join(f"{prep.quote_schema(schema)}.{prep.quote(t)}" for t in full)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def ensure_tenant(app: Any, name: str, domains: Iterable[str] = (), **attrs: Any) -> str:
    """Make tenant ``name`` exist and be empty: created the first time (row, schema, tables,
    domain ``<name>.tenants.test``), afterwards its tenant tables are truncated."""
    from sqlalchemy import select

    from .. import lifecycle
    from ..naming import validate_tenant_name

    state = _state(app)
    validate_tenant_name(name, state.settings.shared_schemas)
    engine = _sync_engine(state)
    tt = state.tenant_model.__table__
    with _no_tenant(), engine.connect() as conn:
        exists = conn.execute(select(tt.c.name).where(tt.c.name == name)).first() is not None
    if exists:
        _empty_tenant(engine, name, [t.name for t in state.tenant_tables])
        return name
    hosts = list(domains) or ([tenant_host(name)] if state.domain_model is not None else [])
    from sqlalchemy.orm import Session

    with _no_tenant(), Session(engine, expire_on_commit=False) as session:
        lifecycle.create_tenant(session, state, name, hosts, **attrs)
        session.commit()
    return name


def _is_quart(app: Any) -> bool:
    return any(c.__module__.startswith("quart") for c in type(app).__mro__)


class TenantClient:
    """A test client whose requests all go to one tenant's host."""

    def __init__(self, app: Any, host: str) -> None:
        self.app = app
        self.host = host
        self.client = app.test_client()
        self.quart = _is_quart(app)

    def open(self, path: str, *args: Any, **kw: Any) -> Any:
        if self.quart:
            headers = dict(kw.pop("headers", None) or {})
            headers.setdefault("host", self.host)
            return self.client.open(path, *args, headers=headers, **kw)
        kw.setdefault("base_url", f"http://{self.host}")
        return self.client.open(path, *args, **kw)

    def _method(self, method: str) -> Callable[..., Any]:
        def call(path: str, *args: Any, **kw: Any) -> Any:
            return self.open(path, *args, method=method, **kw)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in ("get", "post", "put", "patch", "delete", "head", "options"):
            return self._method(name.upper())
        return getattr(self.client, name)


# -- the isolation assertion --------------------------------------------------------------------
ISOLATION_TENANTS = ("isolation1", "isolation2")


def _seed(app: Any, seed: Callable[..., Any], tenant: str) -> list[str]:
    from sqlalchemy.orm import Session

    from ..context import tenant_context
    from ..isolation import pin_session

    state = _state(app)
    with tenant_context(tenant, state.settings.shared_schemas) as binding:
        session = pin_session(Session(_sync_engine(state)), binding)
        try:
            markers = seed(session, tenant)
            session.commit()
        finally:
            session.close()
    if markers is None:
        markers = [tenant]
    elif isinstance(markers, str):
        markers = [markers]
    return [str(m) for m in markers]


def _body(resp: Any) -> str:
    data = resp.get_data(as_text=True) if hasattr(resp, "get_data") else str(resp)
    return str(data)


def _verdict(view_path: str, bodies: dict[str, str], markers: dict[str, list[str]]) -> None:
    (a, b) = list(bodies)
    problems = []
    for me, other in ((a, b), (b, a)):
        leaked = [m for m in markers[other] if m in bodies[me]]
        if leaked:
            problems.append(f"tenant {me!r} saw tenant {other!r}'s data {leaked}")
        missing = [m for m in markers[me] if m not in bodies[me]]
        if missing:
            problems.append(
                f"tenant {me!r}'s own data {missing} is missing from its response (so the "
                "check proves nothing: does the view show what seed() adds?)"
            )
    if problems:
        raise AssertionError(f"Tenant isolation of {view_path!r}: " + "; ".join(problems))


def assert_tenant_isolation(
    app: Any,
    view_path: str,
    seed: Callable[..., Any],
    tenants: tuple[str, str] = ISOLATION_TENANTS,
    **request_kw: Any,
) -> None:
    """Fail unless each of two tenants sees its own data, and only its own, at ``view_path``.

    ``seed(session, tenant)`` adds rows in ``tenant``'s schema (committed for you) and returns
    the string (or strings) that identify them in a response -- by default the tenant's name.
    The tenants are made with :func:`ensure_tenant` (created once, emptied on reuse).
    """
    markers = {t: _seed(app, seed, ensure_tenant(app, t)) for t in tenants}
    bodies = {}
    for t in tenants:
        resp = TenantClient(app, tenant_host(t)).get(view_path, **request_kw)
        assert resp.status_code < 400, (
            f"{view_path!r} on tenant {t!r} answered {resp.status_code}: {_body(resp)[:300]}"
        )
        bodies[t] = _body(resp)
    _verdict(view_path, bodies, markers)


async def assert_tenant_isolation_async(
    app: Any,
    view_path: str,
    seed: Callable[..., Any],
    tenants: tuple[str, str] = ISOLATION_TENANTS,
    **request_kw: Any,
) -> None:
    """:func:`assert_tenant_isolation` for Quart apps (``await`` it)."""
    markers = {t: _seed(app, seed, ensure_tenant(app, t)) for t in tenants}
    bodies = {}
    for t in tenants:
        resp = await TenantClient(app, tenant_host(t)).get(view_path, **request_kw)
        text_ = await resp.get_data(as_text=True)
        assert resp.status_code < 400, f"{view_path!r} on {t!r}: {resp.status_code} {text_[:300]}"
        bodies[t] = text_
    _verdict(view_path, bodies, markers)


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tenants_database_url() -> Iterator[str]:
    """URL (``postgresql://``, no driver) of a throwaway database for this test session."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from .server import start_embedded_postgres, test_database_url

    server_url = test_database_url()
    handle = None
    if server_url is None:
        handle = start_embedded_postgres()
        server_url = handle.url
    name = "tenants_test_" + uuid.uuid4().hex[:10]
    admin_url = make_url(server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=_null_pool())
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
            if handle is not None:
                handle.stop()


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


@pytest.fixture
def tenants_app() -> Any:
    """Override in your conftest.py: your app, configured with ``tenants_database_url``."""
    raise pytest.UsageError(
        "The flask-tenants fixtures need your app: define a fixture named 'tenants_app' in "
        "conftest.py that returns your Flask or Quart app configured with "
        "tenants_database_url (and its shared tables created)."
    )


@pytest.fixture
def tenants_factory(tenants_app: Any) -> Callable[..., str]:
    """``tenants_factory(name=None, domains=(), **attrs)``: a ready, empty tenant (reused)."""
    counter = iter(range(1, 1_000_000))

    def make(name: str | None = None, domains: Iterable[str] = (), **attrs: Any) -> str:
        return ensure_tenant(tenants_app, name or f"tenant{next(counter)}", domains, **attrs)

    return make


@pytest.fixture
def tenants_client(tenants_app: Any) -> Callable[[str], TenantClient]:
    """``tenants_client(name)``: a test client bound to tenant ``name``'s host."""

    def make(name: str) -> TenantClient:
        return TenantClient(tenants_app, tenant_host(name))

    return make


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tenants: tests using the flask-tenants fixtures (informational)"
    )
