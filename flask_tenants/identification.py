"""How a request names its tenant: identification strategies, tried in a configured order.

``TENANTS_IDENTIFICATION`` (default ``['domain', 'subdomain']``, i.e. exactly the host rules of
:mod:`flask_tenants.resolution`) lists the strategies; the first one that *applies* to a request
decides, later ones are not consulted:

``domain``
    The host is looked up in the Domain table. Applies to every host that is not public.
``subdomain``
    The host's first label is the tenant's name (``acme.example.com``). With ``domain`` it is the
    fallback for hosts missing from the Domain table, as before (one query for both).
``path`` (opt-in)
    ``/t/<tenant>/...`` (prefix ``TENANTS_PATH_PREFIX``, default ``'/t'``). The prefix and name
    move into ``SCRIPT_NAME`` (``request.script_root``), so routes are written without them and
    ``url_for`` builds ``/t/<tenant>/...`` links.
``header`` (opt-in)
    The tenant's name in a request header (``TENANTS_TENANT_HEADER``, default ``'X-Tenant'``),
    believed **only** when the request comes straight from a trusted proxy
    (``TENANTS_TRUSTED_PROXIES``: IP addresses or CIDR networks, e.g. ``['10.0.0.0/8']``). From
    any other peer the header is ignored. Configuring ``header`` without a proxy list refuses to
    start (:class:`~flask_tenants.exceptions.ConfigurationError`): a header any client can send
    would let anyone pick any tenant.

A strategy that applies and names an invalid or unknown tenant answers 404 (it does not fall
through to the next strategy). When none applies, the request is public. Examples::

    TENANTS_IDENTIFICATION = ["domain", "subdomain", "path"]  # tenants' hosts, plus
                                                              # www.example.com/t/acme/...
    TENANTS_IDENTIFICATION = ["header", "domain"]             # behind a gateway that sets it
    TENANTS_TRUSTED_PROXIES = ["10.0.0.0/8"]

Everything here is pure (no I/O): the doors call :func:`identify` from their WSGI/ASGI
middleware and pass the result to :meth:`flask_tenants.resolution.Resolver.begin`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigurationError
from .naming import is_valid_tenant_name

__all__ = [
    "STRATEGIES",
    "DEFAULT_STRATEGIES",
    "IDENTIFIED_KEY",
    "Identified",
    "IdentificationSettings",
    "parse_identification",
    "identify",
    "identify_wsgi",
    "identify_asgi",
]

STRATEGIES = ("domain", "subdomain", "path", "header")
DEFAULT_STRATEGIES = ("domain", "subdomain")
#: Key of the :class:`Identified` result in the WSGI environ / ASGI scope.
IDENTIFIED_KEY = "flask_tenants.identified"
_HEADER_RE = re.compile(r"[A-Za-z0-9-]+\Z")
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9_.~-]+)+\Z")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identified:
    """What the strategies made of a request.

    ``kind``: ``'host'`` (resolve the host as the host strategies say), ``'name'`` (tenant
    ``name`` was named by ``strategy``), ``'public'`` (no strategy applies), ``'invalid'``
    (a strategy applied with a name that cannot be a tenant's: 404).
    """

    kind: str
    name: str | None = None
    strategy: str | None = None
    #: the path prefix consumed by the path strategy (``/t/acme``), moved to SCRIPT_NAME
    consumed: str = ""

    @property
    def may_be_tenant(self) -> bool:
        return self.kind in ("host", "name", "invalid")


PUBLIC = Identified("public")
HOST = Identified("host")


@dataclass(frozen=True)
class IdentificationSettings:
    """The validated ``TENANTS_IDENTIFICATION`` and related keys."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    trusted_proxies: tuple[Network, ...] = ()
    header: str = "X-Tenant"
    path_prefix: str = "/t"

    @property
    def is_default(self) -> bool:
        """Host strategies only: the request hooks need nothing but the host."""
        return "path" not in self.strategies and "header" not in self.strategies

    @property
    def uses_domain(self) -> bool:
        return "domain" in self.strategies

    @property
    def uses_subdomain(self) -> bool:
        return "subdomain" in self.strategies

    def trusts(self, peer: str | None) -> bool:
        """True when ``peer`` (an IP address) is one of the trusted proxies."""
        if not peer or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(peer.strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def parse_identification(
    config: Mapping[str, Any], subdomain_fallback: bool | None
) -> IdentificationSettings:
    """Validate the identification keys of ``config``; ConfigurationError saying what to fix.

    ``subdomain_fallback`` is the value of ``TENANTS_SUBDOMAIN_FALLBACK`` when it was set.
    """
    raw = config.get("TENANTS_IDENTIFICATION")
    strategies: tuple[str, ...]
    if raw is None:
        strategies = DEFAULT_STRATEGIES if subdomain_fallback in (None, True) else ("domain",)
    else:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, Iterable) or not items:
            raise ConfigurationError(
                f"TENANTS_IDENTIFICATION must be a non-empty list drawn from {list(STRATEGIES)}, "
                f"not {raw!r}"
            )
        strategies = tuple(str(s).strip().lower() for s in items)
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigurationError(
                f"TENANTS_IDENTIFICATION: unknown strategy {unknown[0]!r}; choose from "
                f"{list(STRATEGIES)}"
            )
        if len(set(strategies)) != len(strategies):
            raise ConfigurationError(f"TENANTS_IDENTIFICATION lists a strategy twice: {raw!r}")
        if subdomain_fallback is False and "subdomain" in strategies:
            raise ConfigurationError(
                "TENANTS_SUBDOMAIN_FALLBACK = False contradicts 'subdomain' in "
                "TENANTS_IDENTIFICATION: remove one of them."
            )
        if subdomain_fallback is True and "subdomain" not in strategies:
            raise ConfigurationError(
                "TENANTS_SUBDOMAIN_FALLBACK = True but TENANTS_IDENTIFICATION has no "
                "'subdomain': add it to the list (or drop TENANTS_SUBDOMAIN_FALLBACK)."
            )
    proxies_raw = config.get("TENANTS_TRUSTED_PROXIES") or ()
    if isinstance(proxies_raw, str):
        proxies_raw = [p for p in re.split(r"[,\s]+", proxies_raw) if p]
    proxies = []
    for p in proxies_raw:
        try:
            proxies.append(ipaddress.ip_network(str(p).strip(), strict=False))
        except ValueError as exc:
            raise ConfigurationError(
                f"TENANTS_TRUSTED_PROXIES: {p!r} is not an IP address or network "
                "(write e.g. '10.0.0.5' or '10.0.0.0/8')"
            ) from exc
    if "header" in strategies and not proxies:
        raise ConfigurationError(
            "TENANTS_IDENTIFICATION includes 'header' but TENANTS_TRUSTED_PROXIES is empty: any "
            "client could then choose its tenant by sending the header. List the addresses of "
            "the proxies that set it, e.g. TENANTS_TRUSTED_PROXIES = ['10.0.0.0/8'], or remove "
            "'header'."
        )
    if any(net.prefixlen == 0 for net in proxies):
        raise ConfigurationError(
            "TENANTS_TRUSTED_PROXIES contains a network that matches every address "
            "(0.0.0.0/0 or ::/0): list only your proxies' addresses."
        )
    header = str(config.get("TENANTS_TENANT_HEADER", "X-Tenant"))
    if not _HEADER_RE.match(header):
        raise ConfigurationError(f"TENANTS_TENANT_HEADER {header!r} is not a header name")
    prefix = str(config.get("TENANTS_PATH_PREFIX", "/t")).rstrip("/")
    if not _PREFIX_RE.match(prefix):
        raise ConfigurationError(f"TENANTS_PATH_PREFIX must be a path such as '/t', not {prefix!r}")
    return IdentificationSettings(strategies, tuple(proxies), header, prefix)


def _split_path(path: str, prefix: str) -> tuple[str, str, str] | None:
    """``('/t/acme', 'acme', '/rest')`` for ``/t/acme/rest``; None when ``path`` lacks prefix."""
    if not path.startswith(prefix + "/"):
        return None
    rest = path[len(prefix) + 1 :]
    name, sep, tail = rest.partition("/")
    if not name:
        return None
    return prefix + "/" + name, name, "/" + tail if sep else "/"


def identify(
    settings: IdentificationSettings,
    classify: Callable[[str | None], tuple[str, str | None]],
    fallback_name: Callable[[str], str | None],
    host: str | None,
    path: str,
    header: Callable[[str], str | None],
    peer: str | None,
) -> Identified:
    """Apply the strategies in order to one request (pure; see the module doc)."""
    host_kind: tuple[str, str | None] | None = None
    for strategy in settings.strategies:
        if strategy == "path":
            split = _split_path(path or "/", settings.path_prefix)
            if split is not None:
                consumed, name, _rest = split
                if not is_valid_tenant_name(name):
                    return Identified("invalid", name, "path", consumed)
                return Identified("name", name, "path", consumed)
        elif strategy == "header":
            value = header(settings.header)
            if value is not None and settings.trusts(peer):
                value = value.strip()
                if not is_valid_tenant_name(value):
                    return Identified("invalid", value, "header")
                return Identified("name", value, "header")
        else:
            if host_kind is None:
                host_kind = classify(host)
            kind, normalized = host_kind
            if kind == "invalid":
                return Identified("invalid", None, strategy)
            if kind == "lookup" and normalized is not None:
                if strategy == "domain" or fallback_name(normalized) is not None:
                    return HOST
    return PUBLIC


# -- the doors' middleware call these -----------------------------------------------------------
def _trusted_peer_wsgi(environ: dict[str, Any]) -> str | None:
    orig = environ.get("werkzeug.proxy_fix.orig")  # ProxyFix ran first: the real peer
    if isinstance(orig, dict) and orig.get("REMOTE_ADDR"):
        return str(orig["REMOTE_ADDR"])
    peer = environ.get("REMOTE_ADDR")
    return str(peer) if peer else None


def identify_wsgi(state: Any, environ: dict[str, Any]) -> str:
    """Identify the WSGI request, move a path prefix to SCRIPT_NAME, store the result in
    ``environ[IDENTIFIED_KEY]``; returns the routing kind ('lookup', 'public', 'invalid') that
    :meth:`Resolver.classify` would give. With the default strategies: classify the host only.
    """
    resolver = state.resolver
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    ident_settings: IdentificationSettings = resolver.identification
    if ident_settings.is_default:
        return str(resolver.classify(host)[0])
    path = environ.get("PATH_INFO") or "/"

    def header(name: str) -> str | None:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return str(value) if value is not None else None

    ident = identify(
        ident_settings,
        resolver.classify,
        resolver.fallback_name,
        host,
        path,
        header,
        _trusted_peer_wsgi(environ),
    )
    if ident.consumed:
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + ident.consumed
        environ["PATH_INFO"] = path[len(ident.consumed) :] or "/"
    environ[IDENTIFIED_KEY] = ident
    return "lookup" if ident.may_be_tenant else "public"


def identify_asgi(state: Any, scope: MutableMapping[str, Any], host: str | None) -> str:
    """The ASGI form of :func:`identify_wsgi` (moves the prefix to ``root_path``)."""
    resolver = state.resolver
    ident_settings: IdentificationSettings = resolver.identification
    if ident_settings.is_default:
        return str(resolver.classify(host)[0])
    root = scope.get("root_path") or ""
    full = scope.get("path") or "/"
    path = (full[len(root) :] or "/") if root and full.startswith(root) else full
    wanted = ident_settings.header.lower().encode("latin-1")

    def header(name: str) -> str | None:
        for k, v in scope.get("headers") or ():
            if bytes(k).lower() == wanted:
                return bytes(v).decode("latin-1")
        return None

    client = scope.get("client")
    ident = identify(
        ident_settings,
        resolver.classify,
        resolver.fallback_name,
        host,
        path,
        header,
        client[0] if client else None,
    )
    if ident.consumed:
        # ASGI's path includes root_path: growing root_path hides the prefix from routing
        if root and not full.startswith(root):
            scope["path"] = root + full
        scope["root_path"] = root + ident.consumed
    scope[IDENTIFIED_KEY] = ident
    return "lookup" if ident.may_be_tenant else "public"
