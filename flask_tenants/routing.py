"""Tenant routes without the tenant URL prefix on tenant hosts: the decision both doors share
(:func:`route_tenant_path`) and the Flask door's WSGI middleware.

Tenant blueprints are registered under ``tenant_url_prefix`` (``/_tenant``). On a host that may be
a tenant's, a request for ``/tanks`` is routed to ``/_tenant/tanks`` when such a route exists;
routes of public blueprints answer 404 there; routes that belong to neither (static files,
app-level routes) are served as they are. On public hosts nothing is rewritten, and the request
hook refuses tenant routes. This decision uses the host alone, never the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import MapAdapter, RequestRedirect
from werkzeug.utils import redirect

from .identification import identify_wsgi

if TYPE_CHECKING:
    from flask import Flask

    from .extension import FlaskTenants

ORIGINAL_PATH = "flask_tenants.original_path"
TENANT_HOST = "flask_tenants.tenant_host"


def strip_prefix(url: str, prefix: str, script_root: str = "") -> str:
    """Remove the tenant URL prefix from a URL built by ``url_for`` (relative or external)."""
    parts = urlsplit(url)
    path = parts.path
    lead = script_root.rstrip("/") + prefix
    if path == lead or path.startswith(lead + "/"):
        path = script_root.rstrip("/") + (path[len(lead) :] or "/")
        return urlunsplit(parts._replace(path=path))
    return url


@dataclass(frozen=True)
class TenantRedirect:
    """The tenant-host path is a strict-slash redirect: answer 308 to ``url`` (prefix-free)."""

    url: str


def route_tenant_path(
    adapter: MapAdapter,
    path: str,
    method: str,
    prefix: str,
    scope_of: Callable[[str], str | None],
    script_name: str = "",
    websocket: bool = False,
) -> str | TenantRedirect:
    """Where a request for ``path`` on a host that may be a tenant's is routed (both doors).

    The prefixed tenant route when one matches (or when nothing matches, so the 404 comes from
    the tenant side); the path unchanged for routes of neither scope (static files, app-level
    routes); the prefixed path (a 404) for public-only routes. Pure: no I/O, no database.
    """
    prefixed = prefix + path
    try:
        adapter.match(prefixed, method, websocket=websocket)
        return prefixed
    except RequestRedirect as r:
        # strict-slash redirects must not reveal the internal prefix
        return TenantRedirect(strip_prefix(r.new_url, prefix, script_name))
    except MethodNotAllowed:
        return prefixed
    except NotFound:
        pass
    except HTTPException:
        return prefixed
    try:
        rule, _ = adapter.match(path, method, return_rule=True, websocket=websocket)
    except HTTPException:
        return prefixed
    if scope_of(rule.endpoint) is None:
        return path
    return prefixed  # a public-only route: 404 on tenant hosts


class RouteMemory:
    """Remembered routing decisions of one app (both doors' middlewares use it).

    :func:`route_tenant_path` is pure given the method, path, script root and the app's routes
    (the host only with host-matching routes or non-default identification strategies; callers
    put it in the key then), so a request on a known path costs a dict lookup instead of binding
    the URL map and matching twice. Forgotten when the routes or blueprint scopes change, and
    bounded: random paths from an attacker cannot grow memory.
    """

    MAX = 4096

    def __init__(self, app: Any, ext: Any) -> None:
        self.app = app
        self.ext = ext
        self._routes: dict[tuple[Any, ...], str] = {}
        self._version: tuple[int, ...] = ()
        self._adds = 0
        self._map = app.url_map
        # Counting the rules on each request would cost a list of all rules per request on
        # Werkzeug 3 (Map._rules is built on access): count the additions instead.
        add = getattr(self._map, "add", None)
        if callable(add) and hasattr(self._map, "bind_to_environ"):

            def counting_add(*args: Any, **kwargs: Any) -> Any:
                self._adds += 1
                return add(*args, **kwargs)

            self._map.add = counting_add
        else:  # not a werkzeug Map we know: no remembering
            self._map = None

    def _current_version(self) -> tuple[int, ...]:
        """Changes whenever the routes or the blueprint scopes may have changed."""
        if self.app.url_map is not self._map:  # replaced (or unknown): no remembering
            return ()
        return (self._adds, len(self.ext._tenant_bps), len(self.ext._public_bps))

    def host_matters(self, state: Any) -> bool:
        """Whether the host must be part of the key for ``state``'s app."""
        return bool(self.app.url_map.host_matching) or not state.resolver.identification.is_default

    def get(self, key: tuple[Any, ...]) -> str | None:
        version = self._current_version()
        if version != self._version:
            self._routes = {}
            self._version = version
        return self._routes.get(key) if version else None

    def put(self, key: tuple[Any, ...], decision: str | TenantRedirect) -> None:
        # a redirect names the request's host in its URL: never served to another request
        if not self._version or isinstance(decision, TenantRedirect):
            return
        if len(self._routes) >= self.MAX:
            self._routes = {}
        self._routes[key] = decision


class TenantPathMiddleware:
    """WSGI middleware that maps tenant-host paths onto the prefixed tenant routes.

    The decision is pure (method, path, script root and the app's routes; the host only in the
    cases said below), so it is remembered: a request on a known path costs a dict lookup
    instead of binding the URL map and matching twice.
    """

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]], ext: FlaskTenants):
        self.app = app
        self.wsgi_app = wsgi_app
        self.ext = ext
        self._memory = RouteMemory(app, ext)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        state = self.ext.state_for(self.app)
        kind = identify_wsgi(state, environ)  # the host (default), or path/header strategies
        if kind == "lookup":
            path = environ.get("PATH_INFO") or "/"
            # The host matters to the decision only with host-matching routes, or when a
            # path/header strategy let a host through that classification did not vouch for
            # (with the host strategies alone, a 'lookup' host is a valid DNS name).
            host = (
                environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
                if self._memory.host_matters(state)
                else None
            )
            key = (
                host,
                environ.get("REQUEST_METHOD", "GET"),
                path,
                environ.get("SCRIPT_NAME", ""),
            )
            new: str | TenantRedirect | None = self._memory.get(key)
            if new is None:
                try:
                    adapter = self.app.url_map.bind_to_environ(environ)
                except HTTPException:
                    # a host werkzeug cannot bind (e.g. an empty IDNA label): nothing to
                    # rewrite, Flask answers it (400) as it does without this middleware
                    return self.wsgi_app(environ, start_response)
                new = route_tenant_path(
                    adapter,
                    path,
                    key[1],
                    state.settings.url_prefix,
                    self.ext.scope_of,
                    key[3],
                )
                self._memory.put(key, new)
            if isinstance(new, TenantRedirect):
                return redirect(new.url, 308)(environ, start_response)
            environ[TENANT_HOST] = True
            if new != path:
                environ[ORIGINAL_PATH] = path
                environ["PATH_INFO"] = new
        return self.wsgi_app(environ, start_response)
