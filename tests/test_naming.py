"""Host and name rules (pure functions: no database needed)."""

from __future__ import annotations

import pytest

from flask_tenants.exceptions import DomainError, InvalidTenantNameError
from flask_tenants.naming import normalize_domain, normalize_host, validate_tenant_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.example.com", "acme.example.com"),
        ("Acme.Example.COM:8080", "acme.example.com"),
        ("acme.example.com.", "acme.example.com"),  # one trailing dot: the same FQDN
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("acme.example.com..", None),
        ("ａｃｍｅ.example.com", None),  # clients send punycode; raw Unicode is malformed
        ("bücher.example", None),
        ("acme.example.com:99999999999999999999", None),
        ("acme.example.com:65536", None),
        ("acme.example.com:８０", None),
        ("acme.example.com:", None),
        ("127.0.0.1", None),
        ("[::1]:80", None),
        ("-acme.example.com", None),
        ("acme_corp.example.com", None),
        ("a" * 64 + ".example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_host(raw: str | None, expected: str | None) -> None:
    assert normalize_host(raw) == expected


def test_domains_typed_by_an_operator_may_be_unicode() -> None:
    assert normalize_domain("Bücher.Example") == "xn--bcher-kva.example"
    for bad in ("acme.example.com:80", "127.0.0.1", "bad host", ""):
        with pytest.raises(DomainError):
            normalize_domain(bad)


@pytest.mark.parametrize(
    "name",
    ["Acme", "acme-corp", "1acme", "public", "pg_x", "information_schema", "tenant", "a" * 64, "ç"],
)
def test_invalid_tenant_names(name: str) -> None:
    with pytest.raises(InvalidTenantNameError):
        validate_tenant_name(name)


def test_shared_schemas_are_reserved() -> None:
    assert validate_tenant_name("billing") == "billing"
    with pytest.raises(InvalidTenantNameError, match="reserved"):
        validate_tenant_name("billing", shared_schemas=["public", "billing"])
