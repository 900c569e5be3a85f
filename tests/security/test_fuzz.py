"""Property-based fuzzing (Hypothesis) of everything that comes from outside.

Host headers, URL paths with and without the tenant prefix, headers an attacker would try
(tenant headers, forwarded hosts), tenant names and domain names given to the lifecycle API.
For every example: never a 500; every SQL statement is one of the library's fixed statements
(captured with ``before_cursor_execute``: the input may reach PostgreSQL only as a bound
parameter); the only search_path set is the resolved tenant's; rows come from that tenant only.

Profiles: ``flask-tenants-ci`` (a few hundred examples in all), ``flask-tenants-full``
(``TENANTS_FULL=1``: >= 10,000 examples in all).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from flask_tenants.exceptions import (
    DomainError,
    InvalidTenantNameError,
    TenantExistsError,
    TenantNotFoundError,
)
from flask_tenants.naming import search_path_for

from ._app import Domain, Tenant, consistency, create_shared, make_app, make_engine
from ._stress import full_size

settings.register_profile(
    "flask-tenants-ci",
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "flask-tenants-full",
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile("flask-tenants-full" if full_size() else "flask-tenants-ci")

# -- the app under fuzz -------------------------------------------------------------------------
# tenants, their domains, and the trap rows in public
TENANTS = {
    "acme": ["acme.example.com", "shop.acme.test"],
    "globex": ["globex-corp.example.org"],
    "t01": [],
    "x": [],
    "select": [],  # an SQL keyword is a fine tenant name: it is always quoted or bound
}
PUBLIC_HOSTS = ["localhost", "www.example.com", "example.com", "127.0.0.1", "[::1]"]
INJECTIONS = [
    "'; DROP SCHEMA public CASCADE; --",
    '"; DROP TABLE tenants; --',
    "' OR '1'='1",
    "acme' --",
    'acme", public, "globex',
    "acme,globex",
    "$user",
    "pg_catalog",
    "public",
    "information_schema",
    "%27",
    "\\x27",
    "acme\x00",
    "ACME",
    "acme.",
    "..",
    "*",
    "t01:5432",
]


@dataclass
class Capture:
    """Every statement sent to the server while ``on``, with its parameters."""

    on: bool = False
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def listen(self, engine: Engine) -> None:
        def before_cursor_execute(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
        ) -> None:
            if self.on:
                self.statements.append((statement, params))

        event.listen(engine, "before_cursor_execute", before_cursor_execute)

    def start(self) -> None:
        self.statements.clear()
        self.on = True

    def stop(self) -> list[tuple[str, Any]]:
        self.on = False
        return list(self.statements)


@dataclass
class Fuzzed:
    app: Any
    ext: Any
    engine: Engine
    capture: Capture
    templates: set[str]


def _database(pg_server_url: str, admin_engine: Engine) -> Iterator[str]:
    name = "fz_" + uuid.uuid4().hex[:12]
    with admin_engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_server_url).set(database=name).render_as_string(False)
    finally:
        with admin_engine.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def fuzzed(pg_server_url: str, _admin_engine: Engine) -> Iterator[Fuzzed]:
    from flask_tenants import with_db

    from ._app import Item

    for url in _database(pg_server_url, _admin_engine):
        engine = make_engine(make_url(url).set(drivername="postgresql+psycopg"), pool_size=2)
        try:
            create_shared(engine)
            app, ext = make_app(engine)
            with app.app_context():
                for name, domains in TENANTS.items():
                    ext.create_tenant(name, domains=domains)
                    with with_db(name) as s:
                        s.add_all([Item(tenant=name, payload="seed") for _ in range(2)])
                        s.commit()
            capture = Capture()
            capture.listen(engine)
            fz = Fuzzed(app, ext, engine, capture, set())
            _learn_templates(fz)
            yield fz
        finally:
            engine.dispose()


def _learn_templates(fz: Fuzzed) -> None:
    """The statements the app sends for benign requests of every shape: the closed set that any
    request, however hostile, may send."""
    client = fz.app.test_client()
    fz.capture.start()
    hosts = [*PUBLIC_HOSTS, "nobody.example.com", "nobody.test", "shop-1.example.com"]
    for name, domains in TENANTS.items():
        hosts += [f"{name}.example.com", *domains]
    for h in hosts:
        for path in ("/items", "/", "/_tenant/items", "/nothing"):
            fz.ext.state_for(fz.app).resolver.invalidate()
            r = client.get(path, environ_overrides={"HTTP_HOST": h})
            assert r.status_code < 500, (h, path, r.data)
    fz.templates.update(s for s, _ in fz.capture.stop())
    assert any("set_config" in s for s in fz.templates)


# -- the oracle ---------------------------------------------------------------------------------


def host_for_werkzeug(raw: str) -> str:
    """What Werkzeug gives the app as ``request.host``: '' when it has invalid characters."""
    if not re.fullmatch(r"[A-Za-z0-9.\-_:\[\]]*", raw):
        return ""
    return raw


def allowed_tenants(raw: str, extra: dict[str, str] | None = None) -> set[str]:
    """Tenants a host may legitimately resolve to (computed without the library); ``extra``
    maps domains added during the example to their tenant."""
    h = host_for_werkzeug(raw).lower()
    m = re.fullmatch(r"(.*):(\d+)", h)
    if m:
        h = m.group(1)
    h = h.rstrip(".")
    out = {t for t, domains in TENANTS.items() if h in domains}
    if extra and h in extra:
        return {extra[h]}  # a domain row wins over the sub-domain fallback
    labels = h.split(".")
    if len(labels) >= 3 or (len(labels) == 2 and labels[1] == "localhost"):
        if labels[0] in TENANTS:
            out.add(labels[0])
    return out


def check_request(
    fz: Fuzzed,
    host: str,
    path: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    client = fz.app.test_client()
    # PATH_INFO as a server would pass it: the test client would read '//x' as a host name
    path_info, _, query = path.partition("?")
    environ = {"HTTP_HOST": host, "PATH_INFO": path_info, "QUERY_STRING": query}
    fz.capture.start()
    r = client.get("/", headers=headers or {}, environ_overrides=environ)
    statements = fz.capture.stop()
    assert r.status_code < 500, (host, path, r.status_code, r.data[:300])
    for sql, _ in statements:
        assert sql in fz.templates, f"statement not in the library's fixed set: {sql!r}"
    paths = {p["path"] for sql, p in statements if "set_config" in sql and isinstance(p, dict)}
    body = r.get_json(silent=True) if r.status_code == 200 else None
    tenant = body.get("tenant") if isinstance(body, dict) else None
    if tenant is None:
        # refused (404/403/308...): no tenant's schema was touched
        assert paths <= {search_path_for("public", ())} | {'"public"'}, (host, path, paths)
        return
    if tenant == "public":
        assert paths <= {'"public"'}, (host, paths)
        assert set(body["tags"]) == {"public"}, body
        assert body["schema"] == "public"
        return
    assert tenant in allowed_tenants(host, extra), (host, tenant)
    assert paths == {search_path_for(tenant, ("public",))}, (host, paths)
    assert body["schema"] == tenant and set(body["tags"]) == {tenant}, body


# -- strategies ---------------------------------------------------------------------------------

label = st.one_of(
    st.sampled_from([*TENANTS, "www", "localhost", "shop", "acme-1", "a" * 63, "a" * 64]),
    st.from_regex(r"[A-Za-z0-9_\-]{1,70}", fullmatch=True),
    st.sampled_from(INJECTIONS),
    st.text(min_size=1, max_size=12),
)
suffix = st.sampled_from(
    ["", ".example.com", ".example.com.", ".localhost", ".acme.test", ".EXAMPLE.com", ".test"]
)
port = st.sampled_from(["", ":80", ":8080", ":", ":abc", ":-1", ":99999999999"])
hosts = st.one_of(
    st.builds(lambda a, s, p: a + s + p, label, suffix, port),
    st.builds(lambda a, b, s: f"{a}.{b}{s}", label, label, suffix),
    st.sampled_from(
        [*PUBLIC_HOSTS, *[d for ds in TENANTS.values() for d in ds], "10.0.0.1:5000", "[::1]:80"]
    ),
    st.text(max_size=80),
)
segment = st.one_of(
    st.sampled_from(["items", "", "..", ".", "%2e%2e", "_tenant", "%2F_tenant", "p", "static"]),
    st.from_regex(r"[A-Za-z0-9_\-.%~]{1,20}", fullmatch=True),
    st.sampled_from(INJECTIONS),
)
paths = st.builds(
    lambda prefix, segs, q: prefix + "/" + "/".join(segs) + q,
    st.sampled_from(["", "/_tenant", "/_tenant/_tenant", "//_tenant", "/_TENANT", "/_tenant/.."]),
    st.lists(segment, min_size=0, max_size=4),
    st.sampled_from(["", "?fault=", "?x=%27", "?tenant=acme"]),
)
ATTACK_HEADERS = [
    "X-Tenant",
    "X-Tenant-Name",
    "X-Tenant-Id",
    "Tenant",
    "X-Forwarded-Host",
    "X-Forwarded-Server",
    "X-Original-Host",
    "X-Host",
    "Forwarded",
    "X-Schema",
]
attack_values = st.one_of(
    st.sampled_from([*TENANTS, "public", "globex-corp.example.org", "host=acme.example.com"]),
    st.sampled_from(INJECTIONS),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


# -- properties ---------------------------------------------------------------------------------


@settings(PROFILE)
@given(host=hosts)
@example(host="acme'; DROP SCHEMA public CASCADE; --.example.com")
@example(host="ACME.EXAMPLE.COM")
@example(host="acme.example.com.:80")
@example(host="127.0.0.1:80")
def test_fuzz_host_header(fuzzed: Fuzzed, host: str) -> None:
    for path in ("/items", "/"):
        check_request(fuzzed, host, path)


@settings(PROFILE)
@given(host=st.one_of(hosts, st.sampled_from(["acme.example.com", "www.example.com"])), path=paths)
@example(host="www.example.com", path="/_tenant/items")
@example(host="acme.example.com", path="/_tenant/_tenant/items")
def test_fuzz_url_paths(fuzzed: Fuzzed, host: str, path: str) -> None:
    check_request(fuzzed, host, path)


@settings(PROFILE)
@given(
    host=st.sampled_from(["www.example.com", "localhost", "acme.example.com", "x.example.com"]),
    headers=st.dictionaries(st.sampled_from(ATTACK_HEADERS), attack_values, max_size=4),
    path=st.sampled_from(["/items", "/_tenant/items", "/"]),
)
@example(host="www.example.com", headers={"X-Tenant": "acme"}, path="/_tenant/items")
@example(
    host="acme.example.com", headers={"X-Forwarded-Host": "globex-corp.example.org"}, path="/items"
)
def test_fuzz_headers_do_not_pick_the_tenant(
    fuzzed: Fuzzed, host: str, headers: dict[str, str], path: str
) -> None:
    """Headers other than Host never choose the tenant (no header identification configured)."""
    try:
        headers = {k: v for k, v in headers.items() if "\n" not in v and "\r" not in v}
        check_request(fuzzed, host, path, headers)
    except ValueError:  # Werkzeug refuses the header value itself
        return


tenant_names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,40}", fullmatch=True),
    st.sampled_from(INJECTIONS),
    st.sampled_from(["Acme", "my-shop", "pg_toast", "tenant", "a" * 64, "1abc", "_x", "ñandu"]),
    st.text(max_size=70),
)


def _lifecycle_statements_ok(statements: list[tuple[str, Any]], name: str) -> None:
    """A name that is not a valid identifier never appears in a statement's text (checked for
    names with a character no identifier has, so that 'pd' in 'updated_at' is no finding)."""
    if re.search(r"[^a-z0-9_]", name) and len(name.strip()) >= 2:
        for sql, _ in statements:
            assert name not in sql, f"input {name!r} in statement text {sql!r}"


@settings(PROFILE)
@given(name=tenant_names, new=tenant_names)
@example(name="acme; drop schema public cascade", new="x")
@example(name="select", new="from")
@example(name="null", new="true")  # keywords: quoted by pg_identify_object, dropped all the same
def test_fuzz_tenant_names_in_lifecycle(fuzzed: Fuzzed, name: str, new: str) -> None:
    """create / rename / delete with any names: a clear error or success, nothing left behind,
    and a name that is not a valid tenant name never reaches any statement's text."""
    from flask_tenants.naming import is_valid_tenant_name

    ext, cap = fuzzed.ext, fuzzed.capture
    valid = is_valid_tenant_name(name) and name not in TENANTS
    made: list[str] = []
    with fuzzed.app.app_context():
        try:
            cap.start()
            refused: Exception | None = None
            try:
                ext.create_tenant(name)
                made.append(name)
            except (InvalidTenantNameError, TenantExistsError) as exc:
                refused = exc
            _lifecycle_statements_ok(cap.stop(), name)
            assert bool(made) == valid, (name, refused)
            if made:
                new_valid = is_valid_tenant_name(new) and new not in TENANTS and new != name
                renamed = False
                cap.start()
                try:
                    ext.rename_tenant(name, new)
                    made[0], renamed = new, True
                except (InvalidTenantNameError, TenantExistsError):
                    pass
                _lifecycle_statements_ok(cap.stop(), new)
                assert renamed == new_valid, (name, new, renamed)
        finally:
            cap.stop()
            for t in made:  # leave the database as it was, whatever failed
                ext.delete_tenant(t)
    cons = consistency(fuzzed.engine)
    assert not cons.tenants_without_schema and not cons.orphan_schemas, cons


domains = st.one_of(
    hosts,
    st.builds(lambda a, s: a + s, label, suffix),
    st.sampled_from(["acme.example.com", "ACME.example.com", "new-shop.example.com", "127.0.0.1"]),
)


@settings(PROFILE)
@given(domain=domains)
@example(domain="evil.example.com'; DROP TABLE domains; --")
@example(domain="Shop.Acme.Test.")
def test_fuzz_domain_names(fuzzed: Fuzzed, domain: str) -> None:
    """add_domain with any string: a DomainError, or a normalised domain that then serves
    exactly that tenant; the input only ever travels as a bound parameter."""
    from flask_tenants.naming import normalize_domain

    ext, cap = fuzzed.ext, fuzzed.capture
    with fuzzed.app.app_context():
        cap.start()
        try:
            ext.add_domain("t01", domain)
            added = True
        except (DomainError, TenantNotFoundError):
            added = False
        for sql, _ in cap.stop():
            assert sql.count("'") == 0 or domain not in sql, sql
            if len(domain) >= 3:
                assert domain not in sql, f"input {domain!r} in statement text {sql!r}"
        if not added:
            return
        stored = normalize_domain(domain)
        try:
            check_request(fuzzed, stored, "/items", extra={stored: "t01"})
            r = fuzzed.app.test_client().get("/items", environ_overrides={"HTTP_HOST": stored})
            assert r.status_code == 200 and r.get_json()["tenant"] == "t01", (domain, r.data)
        finally:
            ext.remove_domain(stored)


def test_profiles_sizes() -> None:
    """The CI profile stays small; the full one reaches 10,000 examples over the 5 properties."""
    ci = settings.get_profile("flask-tenants-ci").max_examples
    full = settings.get_profile("flask-tenants-full").max_examples
    assert 5 * ci <= 1000
    assert 5 * full >= 10_000


# keep the model imports used (they register the tables the fixture creates)
_ = (Tenant, Domain)


# -- the async door: the same host properties on the Quart app ------------------------------


@dataclass
class AioFuzzed:
    loop: Any
    app: Any
    engine: Any
    capture: Capture
    templates: set[str]


@pytest.fixture(scope="module")
def aio_fuzzed(fuzzed: Fuzzed) -> Iterator[AioFuzzed]:
    import asyncio
    import logging

    from sqlalchemy.ext.asyncio import create_async_engine

    from ._aio_app import make_aio_app

    url = fuzzed.engine.url.set(drivername="postgresql+asyncpg")
    loop = asyncio.new_event_loop()
    engine = create_async_engine(url, pool_size=2)
    capture = Capture()
    capture.listen(engine.sync_engine)
    app, _ = make_aio_app(engine)
    logging.getLogger("quart.app").disabled = True
    fz = AioFuzzed(loop, app, engine, capture, set())
    client = app.test_client()
    hosts = [*PUBLIC_HOSTS, "nobody.example.com", "nobody.test"]
    for name, domains in TENANTS.items():
        hosts += [f"{name}.example.com", *domains]
    capture.start()
    for h in hosts:
        for path in ("/items", "/", "/_tenant/items"):
            r = loop.run_until_complete(client.get(path, headers={"Host": h}))
            assert r.status_code < 500, (h, path)
    fz.templates.update(s for s, _ in capture.stop())
    try:
        yield fz
    finally:
        logging.getLogger("quart.app").disabled = False
        loop.run_until_complete(engine.dispose())
        loop.close()


@settings(PROFILE)
@given(host=hosts)
@example(host="ＡＣＭＥ.example.com")  # full-width letters: IDNA maps them to 'acme'
@example(host="acme.example.com\x00")
def test_fuzz_host_header_async(aio_fuzzed: AioFuzzed, host: str) -> None:
    """The Quart door with any Host header: never a 500; only the library's fixed statements;
    a 200 only for the tenant the host names, with that tenant's rows."""
    fz = aio_fuzzed
    client = fz.app.test_client()
    for path in ("/items", "/"):
        fz.capture.start()
        try:
            r = fz.loop.run_until_complete(client.get(path, headers={"Host": host}))
        except ValueError:  # the test client refuses the header value itself
            fz.capture.stop()
            return
        statements = fz.capture.stop()
        assert r.status_code < 500, (host, path, r.status_code)
        for sql, _ in statements:
            assert sql in fz.templates, f"statement not in the library's fixed set: {sql!r}"
        if r.status_code != 200:
            continue
        body = fz.loop.run_until_complete(r.get_json())
        tenant = body["tenant"]
        if tenant == "public":
            assert set(body["tags"]) == {"public"}, body
            continue
        ascii_host = _idna_or_empty(host)
        assert tenant in allowed_tenants(ascii_host), (host, tenant)
        assert body["schema"] == tenant and set(body["tags"]) == {tenant}, body


def _idna_or_empty(host: str) -> str:
    """The host as DNS sees it (IDNA), the way the library normalises it; '' if impossible."""
    try:
        return host.strip().encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return ""
