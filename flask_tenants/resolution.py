"""Request host -> tenant: pure classification, one lookup query, and the in-process cache.

Both doors use the same :class:`Resolver`; only the execution of :meth:`Resolver.lookup_query`
differs (``conn.execute`` vs ``await conn.execute``).

Rules, in order:

1. A host that is not a valid DNS name (bad characters, too long, a port that is not a number)
   is rejected: :class:`~flask_tenants.exceptions.TenantNotFoundError` (404).
2. Public hosts use the public schema: bare IP addresses, names without a dot (``localhost``),
   names whose first label is in ``non_tenant_subdomains`` and the configured public domains.
3. Any other host is looked up in the Domain table; failing that (``TENANTS_SUBDOMAIN_FALLBACK``)
   the first label is taken as a tenant name when the host has at least three labels (or two
   ending in ``localhost``) and the label is a valid tenant name. A host that names no existing
   tenant is a 404; a deactivated tenant a 403.

Other identification strategies (path prefix, trusted header; :mod:`flask_tenants.identification`)
name a tenant directly: the doors pass their :class:`~flask_tenants.identification.Identified`
result to :meth:`Resolver.begin`, and the lookup key ``'=<name>'`` selects the tenant by name.

Results, misses included, are cached. A change committed through this process clears the cache
at once; other processes see it within ``TENANTS_CACHE_TTL`` seconds. How, is
``TENANTS_CACHE_VALIDATION``:

* ``"fingerprint"`` (default): at most once per TTL, one query reads a fingerprint of what
  resolution depends on (every domain's host and tenant, every tenant's name and deactivated
  flag: counts and a sum of 64-bit hashes). Unchanged, every cached answer stays; changed, the
  cache is emptied. The cost is one query per process per TTL, whatever the number of hosts (it
  reads the two tables: ~ms at 10,000 tenants), and it sees changes made any way, raw SQL too.
* ``"ttl"``: each cached answer expires after the TTL and its host is looked up again: one
  query per host per TTL.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, cast, func, literal, select, true, union_all

from .config import TenancySettings
from .context import _reset, _set
from .exceptions import TenantActivationError, TenantNotFoundError
from .naming import is_ip_address, is_valid_tenant_name, normalize_host

__all__ = ["Resolution", "Resolver", "invalidate_all", "watched_tables", "PUBLIC_RESOLUTION"]


@dataclass(frozen=True)
class Resolution:
    """What a host resolved to: a tenant name, or None for the public schema."""

    tenant: str | None
    deactivated: bool = False
    host: str | None = None

    @property
    def is_public(self) -> bool:
        return self.tenant is None


PUBLIC_RESOLUTION = Resolution(None)
_CLASSIFIED_MAX = 4096
_resolvers: weakref.WeakSet[Resolver] = weakref.WeakSet()


#: The Tenant and Domain tables of every tenancy: DML on them clears the cache at commit.
watched_tables: set[Any] = set()


def invalidate_all() -> None:
    """Forget every cached resolution in this process (after tenants or domains changed)."""
    for r in list(_resolvers):
        r.invalidate()


class Resolver:
    """Maps hosts to tenants for one tenancy (its models and settings)."""

    def __init__(self, settings: TenancySettings, tenant_model: Any, domain_model: Any) -> None:
        self.settings = settings
        self.tenant_table = tenant_model.__table__
        self.domain_table = domain_model.__table__ if domain_model is not None else None
        self.has_deactivated = "deactivated" in self.tenant_table.c
        self.identification = settings.identification  # strategies (identification.py)
        self._cache: dict[str, tuple[float, Resolution]] = {}
        self._classified: dict[str | None, tuple[str, str | None]] = {}
        self._lock = threading.Lock()
        # fingerprint validation: entries do not expire, the whole cache is checked per TTL
        self.validates = settings.cache_validation == "fingerprint" and settings.cache_ttl > 0
        self._check_at = 0.0  # monotonic time of the next fingerprint check
        self._fingerprint: tuple[Any, ...] | None = None
        #: bumped whenever the cache is emptied: a lookup that began before must not store
        self.generation = 0
        _resolvers.add(self)

    # -- pure part ------------------------------------------------------------------------
    def classify(self, raw_host: str | None) -> tuple[str, str | None]:
        """('public'|'lookup'|'invalid', normalized host) without touching the database.

        Pure (the settings are frozen), so remembered per raw Host header: each request asks
        twice (routing, then resolution) and hosts repeat.
        """
        try:
            return self._classified[raw_host]
        except KeyError:
            pass
        result = self._classify(raw_host)
        if len(self._classified) >= max(_CLASSIFIED_MAX, 2 * self.settings.cache_size):
            self._classified.clear()  # random hosts from an attacker cannot grow memory
        self._classified[raw_host] = result
        return result

    def _classify(self, raw_host: str | None) -> tuple[str, str | None]:
        if raw_host:
            bare = raw_host.strip().rsplit(":", 1)[0] if not raw_host.startswith("[") else raw_host
            if is_ip_address(bare.strip("[]")) or raw_host.startswith("["):
                return "public", None
        host = normalize_host(raw_host)
        if host is None:
            return "invalid", None
        if "." not in host or host in self.settings.public_domains:
            return "public", host
        if host.split(".", 1)[0] in self.settings.non_tenant_subdomains:
            return "public", host
        return "lookup", host

    def fallback_name(self, host: str) -> str | None:
        """The tenant name the first label of ``host`` would give, if the fallback applies."""
        if not self.settings.subdomain_fallback:
            return None
        labels = host.split(".")
        if len(labels) < 3 and not (len(labels) == 2 and labels[1] == "localhost"):
            return None
        label = labels[0]
        return label if is_valid_tenant_name(label, self.settings.shared_schemas) else None

    def lookup_query(self, host: str) -> Select[Any]:
        """One statement finding the tenant of ``host`` (domain first, then the fallback)."""
        t = self.tenant_table
        deactivated = t.c.deactivated if self.has_deactivated else literal(False)
        if host.startswith("="):  # a tenant named by the path or header strategy
            return (
                select(t.c.name, deactivated.label("deactivated")).where(t.c.name == host[1:])
            ).limit(1)
        parts = []
        if self.domain_table is not None and self.identification.uses_domain:
            d = self.domain_table
            parts.append(
                select(t.c.name, deactivated.label("deactivated"), literal(0).label("prio"))
                .select_from(t.join(d, d.c.tenant_name == t.c.name))
                .where(d.c.domain_name == host)
            )
        label = self.fallback_name(host)
        if label is not None:
            parts.append(
                select(t.c.name, deactivated.label("deactivated"), literal(1).label("prio")).where(
                    t.c.name == label
                )
            )
        if not parts:
            return select(literal(None).label("name")).where(literal(False))
        if len(parts) == 1:
            return parts[0].limit(1)
        u = union_all(*parts).subquery()
        return select(u.c.name, u.c.deactivated).order_by(u.c.prio).limit(1)

    def interpret(self, host: str, row: Any | None) -> Resolution:
        if row is None or row[0] is None:
            return Resolution(None, host=host)  # a miss: no tenant at this host
        return Resolution(row[0], bool(row[1]), host)

    def fingerprint_query(self) -> Select[Any]:
        """One statement summarising every row resolution depends on (see the module doc)."""
        t = self.tenant_table
        flag = cast(t.c.deactivated, String) if self.has_deactivated else literal("")
        tenants = select(
            func.count().label("n"),
            func.coalesce(func.sum(func.hashtextextended(t.c.name + ":" + flag, 0)), 0).label("h"),
        ).subquery("ft_tenants")
        if self.domain_table is None:
            return select(tenants.c.n, tenants.c.h)
        d = self.domain_table
        domains = select(
            func.count().label("n"),
            func.coalesce(
                func.sum(func.hashtextextended(d.c.domain_name + ":" + d.c.tenant_name, 0)), 0
            ).label("h"),
        ).subquery("ft_domains")
        return select(tenants.c.n, tenants.c.h, domains.c.n, domains.c.h).select_from(
            tenants.join(domains, true())
        )

    def check_due(self) -> bool:
        """True (to one caller) when the fingerprint is to be checked now: run
        :meth:`fingerprint_query` and pass its row to :meth:`checked`, or call
        :meth:`check_failed` if it could not run."""
        if not self.validates or time.monotonic() < self._check_at:
            return False
        with self._lock:
            now = time.monotonic()
            if now < self._check_at:
                return False  # another thread claimed it
            self._check_at = now + self.settings.cache_ttl
            return True

    def checked(self, row: Any) -> None:
        """Record a fingerprint; a different one than last time empties the cache."""
        value = tuple(row)
        with self._lock:
            if value != self._fingerprint:
                self._cache.clear()
                self.generation += 1
                self._fingerprint = value

    def check_failed(self) -> None:
        """The check did not run: the next request tries again."""
        self._check_at = 0.0

    @contextmanager
    def fingerprint_check(self) -> Iterator[Select[Any]]:
        """Bracket a door's run of the fingerprint query (yielded): outside any tenant (it
        reads shared tables), and a failure lets the next request try again. The door passes
        the row to :meth:`checked`."""
        token = _set(None)
        try:
            yield self.fingerprint_query()
        except BaseException:
            self.check_failed()
            raise
        finally:
            _reset(token)

    # -- cache ----------------------------------------------------------------------------
    def cached(self, host: str) -> Resolution | None:
        hit = self._cache.get(host)
        if hit is None:
            return None
        expires, res = hit
        if not self.validates and expires < time.monotonic():
            return None
        return res

    def store(self, host: str, res: Resolution) -> None:
        with self._lock:
            if len(self._cache) >= self.settings.cache_size:
                # drop the oldest tenth: random hosts from an attacker cannot grow memory
                for key in list(self._cache)[: max(1, self.settings.cache_size // 10)]:
                    self._cache.pop(key, None)
            self._cache[host] = (time.monotonic() + self.settings.cache_ttl, res)

    def invalidate(self, host: str | None = None) -> None:
        with self._lock:
            self.generation += 1
            if host is None:
                self._cache.clear()
            else:
                self._cache.pop(host, None)

    def begin(
        self, raw_host: str | None, identified: Any = None
    ) -> tuple[Resolution | None, str | None]:
        """First half of a resolution, without I/O: a final answer, or the host to look up.

        Returns ``(resolution, None)`` when no query is needed (public host, cache hit) and
        ``(None, host)`` when the caller must run :meth:`lookup_query` and call :meth:`finish`.
        Raises TenantNotFoundError for a malformed host. ``identified``: the
        :class:`~flask_tenants.identification.Identified` of the request when strategies other
        than the host ones are configured (None: the host decides, as by default).
        """
        if identified is not None and identified.kind != "host":
            return self._begin_identified(raw_host, identified)
        kind, host = self.classify(raw_host)
        if kind == "public":
            return PUBLIC_RESOLUTION, None
        if kind == "invalid" or host is None:
            raise TenantNotFoundError(
                host=raw_host, message=f"No tenant is served at host {raw_host!r}."
            )
        res = self.cached(host)
        if res is not None:
            return self.check(res, raw_host), None
        return None, host

    def _begin_identified(
        self, raw_host: str | None, identified: Any
    ) -> tuple[Resolution | None, str | None]:
        if identified.kind == "public":
            return PUBLIC_RESOLUTION, None
        if identified.kind != "name" or not identified.name:
            raise TenantNotFoundError(
                tenant=identified.name, host=raw_host, message="No tenant is served here."
            )
        key = "=" + identified.name
        res = self.cached(key)
        if res is not None:
            return self.check(res, raw_host), None
        return None, key

    def finish(
        self, host: str, row: Any | None, raw_host: str | None, generation: int | None = None
    ) -> Resolution:
        """Second half: interpret the lookup row, cache it, raise 404/403 as needed.

        ``generation``: :attr:`generation` read before the lookup ran; if the cache was emptied
        since (a change seen meanwhile), the answer serves this request but is not cached.
        """
        res = self.interpret(host, row)
        if generation is None or generation == self.generation:
            self.store(host, res)
        return self.check(res, raw_host)

    # -- verdict --------------------------------------------------------------------------
    @staticmethod
    def check(res: Resolution, raw_host: str | None) -> Resolution:
        """Raise the HTTP-aware error for a miss or a deactivated tenant; return ``res``."""
        if res.tenant is None and res.host is not None:
            raise TenantNotFoundError(
                host=raw_host, message=f"No tenant is served at host {raw_host!r}."
            )
        if res.deactivated:
            raise TenantActivationError(
                tenant=res.tenant, host=raw_host, message="The requested tenant is deactivated."
            )
        return res
