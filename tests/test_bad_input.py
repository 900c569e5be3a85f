"""Hostile input: Host headers give a 404 or the public schema -- never a 500, never another
tenant's schema -- and bad tenant names are refused before any SQL runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from flask_tenants import tenant_context, with_db
from flask_tenants.exceptions import InvalidTenantNameError
from tests.sample_app import (
    Tenant,
    engine_of,
    make_app_with,
    recorded_statements,
    schema_names,
    seed_tanks,
    tenancy_of,
)

pytestmark = pytest.mark.usefixtures("dispose_engines")

TENANTS = {"acme": 2, "globex": 1}


@pytest.fixture(scope="module")
def app(module_db_url: str) -> Iterator[Flask]:
    app = make_app_with(module_db_url)
    seed_tanks(app, TENANTS)
    yield app
    engine_of(app).dispose()


# Hosts that are acme's own host written differently: they must select acme and nothing else.
ACME_SPELLINGS = [
    "ACME.EXAMPLE.COM",
    "Acme.Example.Com",
    "acme.example.com.",
    "acme.example.com:8080",
    "acme.example.com:80",
    " acme.example.com",
    "acme.localhost",  # the sub-domain fallback for local development
]

HOSTILE_HOSTS = [
    "acme.example.com'; DROP SCHEMA acme CASCADE; --",
    "acme'.example.com",
    'acme".example.com',
    "acme\\.example.com",
    "acme;globex.example.com",
    "acme,globex.example.com",
    "acme.example.com,globex.example.com",
    "globex.example.com acme.example.com",
    "acme.example.com@globex.example.com",
    "acme.example.com/../globex",
    "acme.example.com#globex",
    "acme.example.com%00",
    "acme.example.com\x00globex",
    "acme.example.com\r\nX-Tenant: globex",
    "%61cme.example.com",
    "acme-corp.example.com",
    "-acme.example.com",
    "acme-.example.com",
    "acme_corp.example.com",
    "ácme.example.com",
    "аcme.example.com",  # Cyrillic a
    "ａｃｍｅ.example.com",  # full width
    "☃.example.com",
    "xn--.example.com",
    "xn--cme-4na.example.com",
    "a" * 200 + ".example.com",
    ("a" * 63 + ".") * 5 + "com",
    "acme..example.com",
    ".example.com",
    "..",
    ".",
    "",
    " ",
    ":",
    ":80",
    "acme.example.com:",
    "acme.example.com:abc",
    "acme.example.com:-1",
    "acme.example.com:99999999999999999999",
    "127.0.0.1",
    "127.0.0.1:5000",
    "10.0.0.1",
    "0x7f.0.0.1",
    "[::1]",
    "[::1]:8080",
    "::1",
    "[::ffff:127.0.0.1]",
    "[acme.example.com]",
    "public.example.com",
    "pg_catalog.example.com",
    "information_schema.example.com",
    "tenant.example.com",
    "pg_toast.example.com",
    "www.example.com",
    "localhost",
    "*.example.com",
    "acme.example.com" + "." * 300,
    "ACME",
]


def tenant_params(statements: list[tuple[str, Any]]) -> str:
    """Everything sent with the statements, as one string to search for schema names."""
    return "\n".join(f"{sql} {params!r}" for sql, params in statements)


class Answer:
    def __init__(self, status: str, body: bytes) -> None:
        self.status_code = int(status.split()[0])
        self.body = body

    def get_data(self, as_text: bool = False) -> Any:
        return self.body.decode("utf-8", "replace") if as_text else self.body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def request_as(app: Flask, host: str, path: str) -> Answer:
    """Call the WSGI app with exactly this Host header (the test client would choke on some
    of them while building its own URLs, which a real server does not do)."""
    environ = EnvironBuilder(path=path, base_url="http://placeholder").get_environ()
    environ["HTTP_HOST"] = host
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        status.append(s)

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return Answer(status[0], body)


@pytest.mark.parametrize("path", ["/tanks", "/", "/tenants"])
def test_hostile_hosts_are_404_or_public_and_touch_no_schema(app: Flask, path: str) -> None:
    engine = engine_of(app)
    for host in HOSTILE_HOSTS:
        with recorded_statements(engine) as statements:
            r = request_as(app, host, path)
        assert r.status_code in (200, 400, 404), (host, r.status_code)
        body = r.get_data(as_text=True)
        assert "acme-" not in body and "globex-" not in body, host
        if r.status_code == 200:
            assert r.json in ({"tenant": "public"}, ["acme", "globex"]), (host, r.json)
        sent = tenant_params(statements)
        assert '"acme"' not in sent and '"globex"' not in sent, (host, sent)
    # nothing was dropped or changed
    assert {"acme", "globex"} <= schema_names(engine)
    r = request_as(app, "acme.example.com", "/tanks")
    assert r.json == {"tenant": "acme", "tanks": ["acme-0", "acme-1"]}


def test_the_same_host_spelled_differently_is_that_tenant_only(app: Flask) -> None:
    for host in ACME_SPELLINGS:
        with recorded_statements(engine_of(app)) as statements:
            r = request_as(app, host, "/tanks")
        assert r.status_code in (200, 404), host
        if r.status_code == 200:
            assert r.json == {"tenant": "acme", "tanks": ["acme-0", "acme-1"]}, host
        assert '"globex"' not in tenant_params(statements), host
    # the canonical spellings must work
    for host in ("ACME.EXAMPLE.COM", "acme.example.com.", "acme.example.com:8080"):
        assert request_as(app, host, "/tanks").status_code == 200, host


HOSTILE_NAMES: list[Any] = [
    "acme; DROP SCHEMA public CASCADE",
    "acme'",
    "acme''",
    'acme"',
    '"acme"',
    "acme--",
    "acme/*",
    "Acme",
    "ACME",
    "acme-corp",
    "acme corp",
    " acme",
    "acme ",
    "acme\n",
    "acme\x00",
    "acme.globex",
    "ácme",
    "ａｃｍｅ",
    "аcme",  # Cyrillic a
    "1acme",
    "_acme",
    "$acme",
    "a" * 64,
    "é" * 32,  # 64 bytes
    "public",
    "pg_x",
    "pg_catalog",
    "pg_toast",
    "information_schema",
    "tenant",
    "",
    None,
    42,
    b"acme",
]


def api_calls(app: Flask) -> dict[str, Callable[[Any], Any]]:
    tenancy = tenancy_of(app)

    def in_context(fn: Callable[[], Any]) -> Any:
        with app.app_context():
            return fn()

    def with_db_block(name: Any) -> Any:
        with with_db(name) as session:
            return session

    def context_block(name: Any) -> Any:
        with tenant_context(name):
            return None

    return {
        "create_tenant": lambda n: tenancy.create_tenant(n, domains=["new.test.io"]),
        "rename_to": lambda n: tenancy.rename_tenant("acme", n),
        "rename_from": lambda n: tenancy.rename_tenant(n, "renamed"),
        "delete_tenant": tenancy.delete_tenant,
        "get_tenant": tenancy.get_tenant,
        "deactivate_tenant": tenancy.deactivate_tenant,
        "add_domain": lambda n: tenancy.add_domain(n, "extra.test.io"),
        "with_db": lambda n: in_context(lambda: with_db_block(n)),
        "tenant_context": context_block,
        "Tenant(name=...)": lambda n: Tenant(name=n),
    }


def test_hostile_tenant_names_are_refused_before_any_sql(app: Flask) -> None:
    engine = engine_of(app)
    for label, call in api_calls(app).items():
        for name in HOSTILE_NAMES:
            if name in ("public", None) and label in ("with_db", "tenant_context"):
                continue  # the public schema / the current tenant, as documented
            # with_db's first argument may also be the SQLAlchemy instance: other types are a
            # TypeError there, an InvalidTenantNameError everywhere else
            wrong_type = label == "with_db" and not isinstance(name, str)
            expected = TypeError if wrong_type else InvalidTenantNameError
            with recorded_statements(engine) as statements:
                with pytest.raises(expected) as info:
                    call(name)
            assert statements == [], (label, name, statements)
            if not wrong_type:
                assert "lower-case letters" in str(info.value)
    assert {"acme", "globex"} <= schema_names(engine)
    assert "renamed" not in schema_names(engine)


def test_the_longest_valid_name_works_end_to_end(fresh_db: str) -> None:
    app = make_app_with(fresh_db)
    name = "a" * 63
    tenancy_of(app).create_tenant(name, domains=["long.test.io"])
    assert name in schema_names(engine_of(app))
    r = app.test_client().get("/tanks", base_url="http://long.test.io")
    assert r.json == {"tenant": name, "tanks": []}
    r = app.test_client().get("/tanks", base_url=f"http://{name}.example.com")
    assert r.json == {"tenant": name, "tanks": []}
