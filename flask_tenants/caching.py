"""Cache keys per tenant, for Flask-Caching (or any cache keyed by strings).

Flask-Caching's ``@cache.cached()`` keys a view by its path (``view//invoices``). On tenant hosts
every tenant has the same paths, so the first tenant to render ``/invoices`` would have its page
served to all the others. These helpers put the current tenant into every key::

    from flask_caching import Cache
    from flask_tenants.caching import make_cache_key, tenant_memoize_name, tenant_view_key_prefix

    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})

    @tenant_bp.route("/invoices")
    @cache.cached(timeout=60, key_prefix=tenant_view_key_prefix)   # or make_cache_key=...
    def invoices(): ...

    @cache.memoize(timeout=60, make_name=tenant_memoize_name)
    def totals(year): ...

    cache.set(tenant_cache_key("dashboard"), data)                  # hand-made keys

The key's tenant part is ``tenant/<name>/`` for a tenant, ``tenant/public/`` on public hosts and
``tenant/-/`` outside any tenant context (the name is validated: it cannot contain ``/``).
``cache.delete_memoized(totals)`` still invalidates ``totals`` for every tenant.
"""

from __future__ import annotations

from typing import Any

from .context import current_tenant

__all__ = [
    "tenant_cache_key_prefix",
    "tenant_cache_key",
    "tenant_view_key_prefix",
    "make_cache_key",
    "tenant_memoize_name",
]


def tenant_cache_key_prefix() -> str:
    """``'tenant/<current tenant>/'`` (``'tenant/public/'``, or ``'tenant/-/'`` outside any
    tenant context): prefix every cache key a tenant's data can reach with it."""
    name = current_tenant()
    return f"tenant/{name if name is not None else '-'}/"


def tenant_cache_key(key: str) -> str:
    """``key`` prefixed with :func:`tenant_cache_key_prefix` (for ``cache.get/set``)."""
    return tenant_cache_key_prefix() + key


def tenant_view_key_prefix() -> str:
    """For ``@cache.cached(key_prefix=tenant_view_key_prefix)``: Flask-Caching's default
    ``view/<path>`` key with the tenant in front. Works with ``query_string=True`` too."""
    from flask import request

    return f"{tenant_cache_key_prefix()}view/{request.path}"


def make_cache_key(*args: Any, **kwargs: Any) -> str:
    """For ``@cache.cached(make_cache_key=make_cache_key)``: the tenant, the path and the
    sorted query string (so ``?page=2`` is its own entry)."""
    from flask import request

    query = "&".join(f"{k}={v}" for k, v in sorted(request.args.items(multi=True)))
    return f"{tenant_view_key_prefix()}?{query}" if query else tenant_view_key_prefix()


def tenant_memoize_name(fname: str) -> str:
    """For ``@cache.memoize(make_name=tenant_memoize_name)``: memoized results per tenant."""
    return tenant_cache_key_prefix() + fname
