"""Settings, read once from ``app.config`` (``TENANTS_*`` keys) into a frozen object.

* ``TENANTS_URL_PREFIX`` (``'/_tenant'``): internal URL prefix of tenant blueprints.
* ``TENANTS_NON_TENANT_SUBDOMAINS`` (``['www', 'localhost', 'local']``): hosts whose first label
  is one of these are public.
* ``TENANTS_PUBLIC_DOMAINS`` (``[]``): host names served from the public schema.
* ``TENANTS_SUBDOMAIN_FALLBACK`` (``True``): a host missing from the Domain table selects the
  tenant named by its first label.
* ``TENANTS_CACHE_TTL`` (``5.0``): seconds a resolved host is trusted; changes made by other
  processes are seen within this time.
* ``TENANTS_CACHE_SIZE`` (``10000``): hosts kept in the resolution cache.
* ``TENANTS_SHARED_SCHEMAS`` (``['public']``): schemas after the tenant's in ``search_path``.
* ``TENANTS_DATABASE_URL`` (``SQLALCHEMY_DATABASE_URI``): the database when not using
  Flask-SQLAlchemy; ``TENANTS_ENGINE_OPTIONS`` (``{}``): its ``create_engine`` options.
* ``TENANTS_CITUS`` (``'auto'``): make new tenants Citus distributed schemas -- ``True``, ``False``,
  or ``'auto'`` (only when the ``citus`` extension is installed); see :mod:`flask_tenants.citus`.
* ``TENANTS_CITUS_REFERENCE_TABLES`` (``[]``): shared tables to make Citus reference tables besides
  those that tenant tables reference by foreign key.
* ``TENANTS_IDENTIFICATION`` (``['domain', 'subdomain']``), ``TENANTS_TRUSTED_PROXIES``,
  ``TENANTS_TENANT_HEADER``, ``TENANTS_PATH_PREFIX``: see :mod:`flask_tenants.identification`.
* ``TENANTS_STRICT`` (``False``), ``TENANTS_STRICT_ALLOWED_SCHEMAS`` (``[]``): see
  :mod:`flask_tenants.strict`.
* ``TENANTS_OWNER_ROLE`` (``None``): the database role that owns tenant schemas; lifecycle DDL
  runs under ``SET LOCAL ROLE`` to it, in the same transaction. See
  :mod:`flask_tenants.privileges`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ConfigurationError
from .identification import IdentificationSettings, parse_identification
from .naming import normalize_host

__all__ = ["TenancySettings", "DEFAULT_URL_PREFIX", "DEFAULT_NON_TENANT_SUBDOMAINS"]

DEFAULT_URL_PREFIX = "/_tenant"
DEFAULT_NON_TENANT_SUBDOMAINS = ("www", "localhost", "local")


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise ConfigurationError(f"{key} must be a list of strings, not {value!r}")
    out = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"{key} must be a list of non-empty strings, got {item!r}")
        out.append(item.lower())
    return tuple(out)


@dataclass(frozen=True)
class TenancySettings:
    """Validated tenancy settings; build with :meth:`from_mapping` (an ``app.config``)."""

    url_prefix: str = DEFAULT_URL_PREFIX
    non_tenant_subdomains: tuple[str, ...] = DEFAULT_NON_TENANT_SUBDOMAINS
    public_domains: frozenset[str] = frozenset()
    subdomain_fallback: bool = True
    cache_ttl: float = 5.0
    cache_size: int = 10_000
    # how cached resolutions learn of changes made by other processes: "fingerprint" (one
    # query per TTL checks the whole Domain/Tenant table) or "ttl" (each host looked up again)
    cache_validation: str = "fingerprint"
    shared_schemas: tuple[str, ...] = ("public",)
    database_url: str | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    identification: IdentificationSettings = field(default_factory=IdentificationSettings)
    strict: bool = False
    strict_allowed_schemas: tuple[str, ...] = ()
    # Citus schema-based sharding (flask_tenants.citus): True, False or "auto"
    citus: bool | str = "auto"
    citus_reference_tables: tuple[str, ...] = ()
    owner_role: str | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], **overrides: Any) -> TenancySettings:
        """Read ``TENANTS_*`` keys from ``config``; keyword ``overrides`` (not None) win."""
        get = config.get
        values: dict[str, Any] = {
            "url_prefix": get("TENANTS_URL_PREFIX", DEFAULT_URL_PREFIX),
            "non_tenant_subdomains": get(
                "TENANTS_NON_TENANT_SUBDOMAINS", DEFAULT_NON_TENANT_SUBDOMAINS
            ),
            "public_domains": get("TENANTS_PUBLIC_DOMAINS", ()),
            "subdomain_fallback": get("TENANTS_SUBDOMAIN_FALLBACK", True),
            "cache_ttl": get("TENANTS_CACHE_TTL", 5.0),
            "cache_size": get("TENANTS_CACHE_SIZE", 10_000),
            "cache_validation": get("TENANTS_CACHE_VALIDATION", "fingerprint"),
            "shared_schemas": get("TENANTS_SHARED_SCHEMAS", ("public",)),
            "database_url": get("TENANTS_DATABASE_URL") or get("SQLALCHEMY_DATABASE_URI"),
            "engine_options": get("TENANTS_ENGINE_OPTIONS", {}),
            "strict": get("TENANTS_STRICT", False),
            "strict_allowed_schemas": get("TENANTS_STRICT_ALLOWED_SCHEMAS", ()),
            "citus": get("TENANTS_CITUS", "auto"),
            "citus_reference_tables": get("TENANTS_CITUS_REFERENCE_TABLES", ()),
            "owner_role": get("TENANTS_OWNER_ROLE"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        # identification strategies (flask_tenants.identification); they decide the fallback
        explicit = "TENANTS_SUBDOMAIN_FALLBACK" in config or "subdomain_fallback" in overrides
        ident = parse_identification(
            config, bool(values["subdomain_fallback"]) if explicit else None
        )
        values["identification"] = ident
        values["subdomain_fallback"] = ident.uses_subdomain
        return cls._validated(values)

    @classmethod
    def _validated(cls, v: dict[str, Any]) -> TenancySettings:
        prefix = v["url_prefix"]
        if not isinstance(prefix, str) or not prefix.startswith("/") or prefix == "/":
            raise ConfigurationError(
                f"tenant_url_prefix / TENANTS_URL_PREFIX must be a path such as '/_tenant', "
                f"not {prefix!r}"
            )
        publics = set()
        for d in _names(v["public_domains"], "TENANTS_PUBLIC_DOMAINS"):
            host = normalize_host(d)
            if host is None:
                raise ConfigurationError(f"TENANTS_PUBLIC_DOMAINS: {d!r} is not a host name")
            publics.add(host)
        shared = _names(v["shared_schemas"], "TENANTS_SHARED_SCHEMAS")
        try:
            ttl = float(v["cache_ttl"])
            size = int(v["cache_size"])
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                "TENANTS_CACHE_TTL must be a number of seconds and TENANTS_CACHE_SIZE an integer"
            ) from exc
        if ttl < 0 or size < 1:
            raise ConfigurationError("TENANTS_CACHE_TTL must be >= 0 and TENANTS_CACHE_SIZE >= 1")
        validation = v["cache_validation"]
        if validation not in ("fingerprint", "ttl"):
            raise ConfigurationError(
                f"TENANTS_CACHE_VALIDATION must be 'fingerprint' or 'ttl', not {validation!r}"
            )
        return cls(
            url_prefix=prefix.rstrip("/"),
            non_tenant_subdomains=_names(
                v["non_tenant_subdomains"], "TENANTS_NON_TENANT_SUBDOMAINS"
            ),
            public_domains=frozenset(publics),
            subdomain_fallback=bool(v["subdomain_fallback"]),
            cache_ttl=ttl,
            cache_size=size,
            cache_validation=validation,
            shared_schemas=shared,
            database_url=v["database_url"],
            engine_options=dict(v["engine_options"] or {}),
            identification=v["identification"],
            strict=bool(v["strict"]),
            strict_allowed_schemas=_names(
                v["strict_allowed_schemas"], "TENANTS_STRICT_ALLOWED_SCHEMAS"
            ),
            citus=_citus_mode(v["citus"]),
            citus_reference_tables=_table_names(v["citus_reference_tables"]),
            owner_role=_role(v["owner_role"]),
        )


def _role(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"TENANTS_OWNER_ROLE must be a role name, not {value!r}")
    return value


def _citus_mode(value: Any) -> bool | str:
    """``TENANTS_CITUS``: a bool, or 'auto'; the strings of environment variables are accepted."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("auto", "true", "false", "1", "0", "yes", "no", "on", "off"):
        return "auto" if word == "auto" else word in ("true", "1", "yes", "on")
    raise ConfigurationError(f"TENANTS_CITUS must be True, False or 'auto', not {value!r}")


def _table_names(value: Any) -> tuple[str, ...]:
    """``TENANTS_CITUS_REFERENCE_TABLES``: 'table' or 'schema.table' names, case kept."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable) or not all(
        isinstance(i, str) and 0 < len(i.split(".")) <= 2 and all(i.split(".")) for i in items
    ):
        raise ConfigurationError(
            "TENANTS_CITUS_REFERENCE_TABLES must be a list of table names such as "
            f"['plans', 'public.countries'], not {value!r}"
        )
    return tuple(items)
