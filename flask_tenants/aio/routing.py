"""Tenant routes without the tenant URL prefix on tenant hosts: the ASGI half of the Quart door.

The decision is the core's :func:`flask_tenants.routing.route_tenant_path`, the same one the
Flask door's WSGI middleware makes; here it is applied to the ASGI scope before Quart routes the
request. The middleware is also the last line of defence for the request's session: whatever
happened to the request context, the session is closed when the ASGI call ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect

from ..exceptions import TenantNotFoundError
from ..identification import identify_asgi
from ..routing import (
    ORIGINAL_PATH,
    TENANT_HOST,
    RouteMemory,
    TenantRedirect,
    route_tenant_path,
    strip_prefix,
)
from .session import close_session

if TYPE_CHECKING:
    from quart import Quart

    from .extension import QuartTenants

__all__ = ["TenantPathASGIMiddleware", "wrap_url_for", "SESSION_KEY", "GONE_KEY"]

#: Scope key under which the Quart door keeps the request's AsyncSession and the task using it.
SESSION_KEY = "flask_tenants.session"

#: Scope key set when the ASGI call was cancelled: the request's hooks must not start work.
GONE_KEY = "flask_tenants.gone"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


def _host(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == b"host":
            return bytes(value).decode("latin-1")
    return None


class TenantPathASGIMiddleware:
    """ASGI middleware (around ``app.asgi_app``) that maps tenant-host paths onto the prefixed
    tenant routes, and closes the request's session when the call ends."""

    def __init__(self, app: Quart, asgi_app: Callable[..., Awaitable[None]], ext: QuartTenants):
        self.app = app
        self.asgi_app = asgi_app
        self.ext = ext
        self._memory = RouteMemory(app, ext)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.asgi_app(scope, receive, send)
            return
        scope = dict(scope)
        if not await self._route(scope, send):
            return
        try:
            await self.asgi_app(scope, receive, send)
        except asyncio.CancelledError:
            # The server cancelled this call (the client is gone). Quart leaves the request's
            # handler task running then; stop it too, so it gives its connection back now.
            scope[GONE_KEY] = True  # a handler that has not started yet will not start
            entry = scope.get(SESSION_KEY)
            owner = entry[1] if entry is not None else None
            if owner is not None and owner is not asyncio.current_task():
                owner.cancel()
            raise
        finally:
            entry = scope.pop(SESSION_KEY, None)
            if entry is not None:
                await _close_when_done(*entry)

    async def _route(self, scope: Scope, send: Send) -> bool:
        """Rewrite ``scope`` for a tenant host; False when a redirect was answered instead."""
        state = self.ext.state_for(self.app)
        host = _host(scope)
        if state.resolver.classify(host)[0] != "lookup" and not _bindable(self.app, host):
            # Quart itself answers 500 for hosts werkzeug cannot bind (e.g. '0..', public by
            # its first label but not IDNA-encodable): give the 404 here
            error = TenantNotFoundError(host=host, message=f"No tenant is served at {host!r}.")
            await _send_response(send, error.get_response())
            return False
        kind = identify_asgi(state, scope, host)  # the host (default), or path/header
        if kind != "lookup":
            return True
        root = scope.get("root_path") or ""
        full = scope.get("path") or "/"
        path = (full[len(root) :] or "/") if root and full.startswith(root) else full
        websocket = scope["type"] == "websocket"
        method = "GET" if websocket else scope.get("method", "GET")
        prefix = state.settings.url_prefix
        key = (host if self._memory.host_matters(state) else None, method, path, root, websocket)
        new: str | TenantRedirect | None = self._memory.get(key)
        if new is None:
            adapter = self.app.url_map.bind(
                (host or "").lower(),
                script_name=root or None,
                url_scheme=scope.get("scheme", "http"),
                default_method=method,
                path_info=path,
            )
            new = route_tenant_path(
                adapter, path, method, prefix, self.ext.scope_of, root, websocket=websocket
            )
            self._memory.put(key, new)
        if isinstance(new, TenantRedirect):
            if websocket:
                new = prefix + path
            else:
                await _send_response(send, redirect(new.url, 308))
                return False
        scope[TENANT_HOST] = True
        if new != path:
            scope[ORIGINAL_PATH] = full
            scope["path"] = (root + new) if full.startswith(root) and root else new
            raw = scope.get("raw_path")
            if raw is not None and not root:
                scope["raw_path"] = prefix.encode("ascii") + bytes(raw)
            else:
                scope.pop("raw_path", None)
        return True


_closing: set[asyncio.Task[None]] = set()


async def _close_when_done(session: Any, owner: asyncio.Task[Any] | None) -> None:
    """Close a request's session that its teardown did not close (a preserved context, or a
    handler task that outlives a cancelled ASGI call): now if its task is done, else when it is.
    Never concurrently with the task still using it."""
    if owner is None or owner.done() or owner is asyncio.current_task():
        await close_session(session)
        return

    def later(_: Any) -> None:
        task = asyncio.ensure_future(close_session(session))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    owner.add_done_callback(later)


def _bindable(app: Any, host: str | None) -> bool:
    try:
        app.url_map.bind((host or "").lower())
    except HTTPException:
        return False
    return True


async def _send_response(send: Send, response: Any) -> None:
    body = response.get_data()
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wrap_url_for(app: Quart, ext: QuartTenants) -> None:
    """Make ``url_for`` leave the internal tenant prefix out on tenant hosts."""
    import quart

    original = app.url_for

    def url_for(endpoint: str, **values: Any) -> str:
        url = original(endpoint, **values)
        if quart.has_request_context():
            req: Any = quart.request
        elif quart.has_websocket_context():
            req = quart.websocket
        else:
            return url
        if req.scope.get(TENANT_HOST):
            return strip_prefix(url, ext.state_for(app).settings.url_prefix, req.root_path)
        return url

    app.url_for = url_for  # type: ignore[method-assign]
    app.jinja_env.globals["url_for"] = url_for
