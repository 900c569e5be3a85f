"""Cache keys per tenant with Flask-Caching: a cached view never serves one tenant's page to
another."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, g, jsonify, request

from flask_tenants import tenant_context, with_db
from flask_tenants.caching import (
    make_cache_key,
    tenant_cache_key,
    tenant_cache_key_prefix,
    tenant_memoize_name,
    tenant_view_key_prefix,
)
from tests.sample_app import Tank, make_app

flask_caching = pytest.importorskip("flask_caching")


def _app(url: str) -> tuple[Flask, Any]:
    app = make_app(url)
    cache = flask_caching.Cache(app, config={"CACHE_TYPE": "SimpleCache"})
    tenancy = app.extensions["test_tenancy"]
    bp = Blueprint("cached", __name__)

    def tanks() -> Any:
        names = [t.name for t in g.db_session.query(Tank).order_by(Tank.id)]
        return jsonify({"tenant": g.tenant, "tanks": names, "page": request.args.get("page")})

    bp.add_url_rule("/naive", "naive", cache.cached(timeout=60)(tanks))
    bp.add_url_rule(
        "/prefixed", "prefixed", cache.cached(timeout=60, key_prefix=tenant_view_key_prefix)(tanks)
    )
    bp.add_url_rule(
        "/keyed", "keyed", cache.cached(timeout=60, make_cache_key=make_cache_key)(tanks)
    )
    root = tenancy.create_tenant_blueprint("cached_root")
    root.register_blueprint(bp)
    app.register_blueprint(root)
    for name in ("acme", "globex"):
        tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        with app.app_context(), with_db(name) as s:
            s.add(Tank(name=f"{name}-tank"))
            s.commit()
    return app, cache


def test_default_key_leaks_between_tenants_and_the_helpers_do_not(fresh_db: str) -> None:
    app, _ = _app(fresh_db)
    c = app.test_client()
    acme, globex = "http://acme.example.com", "http://globex.example.com"
    # the trap this module exists for: Flask-Caching's default key is the path alone
    assert c.get("/naive", base_url=acme).json["tenant"] == "acme"
    assert c.get("/naive", base_url=globex).json["tenant"] == "acme"  # globex got acme's page
    for path in ("/prefixed", "/keyed"):
        for _ in range(2):  # second round: from the cache
            assert c.get(path, base_url=acme).json["tanks"] == ["acme-tank"]
            assert c.get(path, base_url=globex).json["tanks"] == ["globex-tank"]


def test_make_cache_key_separates_query_strings(fresh_db: str) -> None:
    app, _ = _app(fresh_db)
    c = app.test_client()
    acme = "http://acme.example.com"
    assert c.get("/keyed?page=1", base_url=acme).json["page"] == "1"
    assert c.get("/keyed?page=2", base_url=acme).json["page"] == "2"
    assert c.get("/keyed?page=1", base_url=acme).json["page"] == "1"


def test_memoize_and_hand_made_keys_per_tenant(fresh_db: str) -> None:
    app, cache = _app(fresh_db)
    calls: list[str | None] = []

    @cache.memoize(timeout=60, make_name=tenant_memoize_name)
    def count(kind: str) -> str:
        from flask_tenants import current_tenant

        calls.append(current_tenant())
        return f"{current_tenant()}:{kind}"

    with app.app_context():
        for _ in range(2):
            with tenant_context("acme"):
                assert count("x") == "acme:x"
                cache.set(tenant_cache_key("k"), "acme-value")
            with tenant_context("globex"):
                assert count("x") == "globex:x"
                assert cache.get(tenant_cache_key("k")) in (None, "globex-value")
                cache.set(tenant_cache_key("k"), "globex-value")
        assert calls == ["acme", "globex"]  # computed once per tenant
        with tenant_context("acme"):
            assert cache.get(tenant_cache_key("k")) == "acme-value"
        cache.delete_memoized(count)
        with tenant_context("globex"):
            assert count("x") == "globex:x"
        assert calls == ["acme", "globex", "globex"]


def test_prefix_values() -> None:
    assert tenant_cache_key_prefix() == "tenant/-/"
    with tenant_context("acme"):
        assert tenant_cache_key_prefix() == "tenant/acme/"
        assert tenant_cache_key("a") == "tenant/acme/a"
    with tenant_context(None):
        assert tenant_cache_key_prefix() == "tenant/public/"
