"""Tenant and schema name rules, and host name normalisation.

Pure functions, no I/O: every name that reaches SQL has been through :func:`validate_tenant_name`
first, and is then only ever passed to PostgreSQL as a bound parameter or quoted by SQLAlchemy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .exceptions import DomainError, InvalidTenantNameError

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "RESERVED_SCHEMAS",
    "validate_tenant_name",
    "is_valid_tenant_name",
    "normalize_host",
    "normalize_domain",
    "is_ip_address",
    "search_path_for",
]

MAX_IDENTIFIER_BYTES = 63
RESERVED_SCHEMAS = frozenset({"public", "information_schema", "tenant"})
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_MAX_HOST = 253


def validate_tenant_name(name: object, shared_schemas: Iterable[str] = ()) -> str:
    """Return ``name`` if it is a valid tenant (schema) name, else raise InvalidTenantNameError.

    Rules: lower-case ASCII letters, digits and underscore, starting with a letter; at most 63
    bytes (PostgreSQL truncates longer identifiers silently, so two long names could collide);
    not ``public``, ``information_schema``, ``tenant`` (the placeholder schema of
    ``BaseTenantModel``), ``pg_*`` or one of the configured shared schemas.
    """
    if not isinstance(name, str):
        raise InvalidTenantNameError(name, "it must be a string")
    if not name:
        raise InvalidTenantNameError(name, "it is empty")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise InvalidTenantNameError(name, f"it is longer than {MAX_IDENTIFIER_BYTES} bytes")
    if not _NAME_RE.match(name):
        if name.lower() != name:
            raise InvalidTenantNameError(name, "it contains upper-case letters")
        raise InvalidTenantNameError(
            name, "only a-z, 0-9 and '_' are allowed and it must start with a letter"
        )
    if name in RESERVED_SCHEMAS or name.startswith("pg_") or name in set(shared_schemas):
        raise InvalidTenantNameError(name, "it is a reserved or shared schema name")
    return name


def is_valid_tenant_name(name: object, shared_schemas: Iterable[str] = ()) -> bool:
    """True when :func:`validate_tenant_name` would accept ``name``."""
    try:
        validate_tenant_name(name, shared_schemas)
    except InvalidTenantNameError:
        return False
    return True


def is_ip_address(host: str) -> bool:
    """True for a bare IPv4 or IPv6 address (with or without brackets)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def normalize_host(raw: str | None, allow_unicode: bool = False) -> str | None:
    """The request Host header as a lower-case, port-less host name.

    Returns None for anything that is not a syntactically valid DNS host name: empty, too long,
    labels with forbidden characters, IP addresses (which never name a tenant), ports that are
    not numbers, more than one trailing dot. HTTP clients send internationalised names in their
    ASCII (punycode) form, so a Host with other characters is refused too, unless
    ``allow_unicode`` (used for names typed by an operator, see :func:`normalize_domain`), which
    converts it with IDNA. Never raises: the caller turns None into a 404 or the public schema.
    """
    if not raw or len(raw) > 1024:
        return None
    host = raw.strip()
    if host.startswith("["):  # IPv6 literal
        return None
    if ":" in host:
        host, _, port = host.rpartition(":")
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
            return None
    if host.endswith("."):
        host = host[:-1]
    if not host:
        return None
    if not host.isascii():
        if not allow_unicode:
            return None
        try:
            host = host.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return None
    host = host.lower()
    if len(host) > _MAX_HOST or is_ip_address(host):
        return None
    if not all(_LABEL_RE.match(label) for label in host.split(".")):
        return None
    return host


def normalize_domain(raw: str) -> str:
    """Normalise a domain name for the Domain table (IDNA: ``bücher.example`` is stored as
    ``xn--bcher-kva.example``), or raise DomainError saying what is wrong."""
    host = normalize_host(raw, allow_unicode=True)
    if host is None or (raw and ":" in raw):
        raise DomainError(
            f"Invalid domain name {raw!r}: use a host name such as 'acme.example.com' "
            "(letters, digits and hyphens, no port, no IP address)."
        )
    return host


def search_path_for(schema: str, shared_schemas: Iterable[str]) -> str:
    """The ``search_path`` value for a tenant: its own schema first, then the shared ones."""
    parts = [schema, *[s for s in shared_schemas if s != schema]]
    return ", ".join(f'"{p}"' for p in parts)
