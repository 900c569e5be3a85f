"""Identification strategies: defaults unchanged, path prefix, trusted-proxy header, refusal of
unsafe configurations."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, url_for

from flask_tenants import with_db
from flask_tenants.config import TenancySettings
from flask_tenants.exceptions import ConfigurationError
from flask_tenants.identification import Identified, identify, parse_identification
from flask_tenants.resolution import Resolver
from tests.sample_app import Domain, Tank, Tenant, make_app

PUBLIC = "http://www.example.com"
ACME = "http://acme.example.com"


def _app(url: str, **config: Any) -> Flask:
    app = make_app(url, **config)
    tenancy = app.extensions["test_tenancy"]
    links = Blueprint("links", __name__)
    links.add_url_rule("/link", "link", lambda: url_for("tank.tank_bp.list_tanks"))
    root = tenancy.create_tenant_blueprint("links_root")
    root.register_blueprint(links)
    app.register_blueprint(root)
    for name in ("acme", "globex"):
        tenancy.create_tenant(name, domains=[f"{name}.example.com"])
        with app.app_context(), with_db(name) as s:
            s.add(Tank(name=f"{name}-tank"))
            s.commit()
    return app


def _tanks(resp: Any) -> Any:
    assert resp.status_code == 200, (resp.status_code, resp.data[:300])
    return resp.json["tenant"], resp.json["tanks"]


# -- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"TENANTS_IDENTIFICATION": ["domain", "header"]}, "TENANTS_TRUSTED_PROXIES is empty"),
        ({"TENANTS_IDENTIFICATION": ["host"]}, "unknown strategy 'host'"),
        ({"TENANTS_IDENTIFICATION": []}, "non-empty list"),
        ({"TENANTS_IDENTIFICATION": ["path", "path"]}, "twice"),
        (
            {"TENANTS_IDENTIFICATION": ["header"], "TENANTS_TRUSTED_PROXIES": ["0.0.0.0/0"]},
            "every address",
        ),
        (
            {"TENANTS_IDENTIFICATION": ["header"], "TENANTS_TRUSTED_PROXIES": ["proxy.local"]},
            "not an IP address",
        ),
        (
            {"TENANTS_IDENTIFICATION": ["domain", "subdomain"], "TENANTS_SUBDOMAIN_FALLBACK": 0},
            "contradicts",
        ),
        ({"TENANTS_IDENTIFICATION": ["path"], "TENANTS_PATH_PREFIX": "t"}, "TENANTS_PATH_PREFIX"),
        ({"TENANTS_IDENTIFICATION": ["path"], "TENANTS_TENANT_HEADER": "X Tenant"}, "header name"),
    ],
)
def test_unsafe_or_wrong_configuration_refuses_to_start(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TenancySettings.from_mapping(config)


def test_header_misconfiguration_stops_init_app(fresh_db: str) -> None:
    with pytest.raises(ConfigurationError, match="TENANTS_TRUSTED_PROXIES"):
        make_app(fresh_db, TENANTS_IDENTIFICATION=["header", "domain"])


def test_defaults_are_the_host_rules() -> None:
    s = TenancySettings.from_mapping({})
    assert s.identification.strategies == ("domain", "subdomain")
    assert s.identification.is_default and s.subdomain_fallback
    off = TenancySettings.from_mapping({"TENANTS_SUBDOMAIN_FALLBACK": False})
    assert off.identification.strategies == ("domain",) and not off.subdomain_fallback
    assert not TenancySettings.from_mapping({"TENANTS_IDENTIFICATION": "domain"}).subdomain_fallback


def test_identify_order_first_applicable_wins() -> None:
    ident = parse_identification(
        {
            "TENANTS_IDENTIFICATION": ["header", "path", "domain", "subdomain"],
            "TENANTS_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/24",
        },
        None,
    )
    r = Resolver(TenancySettings(identification=ident), Tenant, Domain)

    def run(host: str, path: str = "/", hdr: str | None = None, peer: str = "10.0.0.1") -> Any:
        return identify(ident, r.classify, r.fallback_name, host, path, lambda n: hdr, peer)

    assert run("acme.example.com", hdr="globex") == Identified("name", "globex", "header")
    assert run("acme.example.com", hdr="globex", peer="10.0.0.2").kind == "host"
    assert run("www.example.com", "/t/initech/x") == Identified(
        "name", "initech", "path", "/t/initech"
    )
    assert run("www.example.com", "/t/initech/x", hdr="acme").name == "acme"
    assert run("www.example.com", "/t/Bad/x").kind == "invalid"
    assert run("www.example.com", "/tanks").kind == "public"
    assert run("www.example.com", "/t/").kind == "public"
    assert run("bad host!", "/").kind == "invalid"
    assert run("192.168.0.7", "/", hdr="acme", peer="192.168.0.9").name == "acme"


# -- end to end (Flask) -----------------------------------------------------------------------
def test_default_app_is_unchanged_by_the_strategies(fresh_db: str) -> None:
    app = _app(fresh_db)
    c = app.test_client()
    assert _tanks(c.get("/tanks", base_url=ACME)) == ("acme", ["acme-tank"])
    # no path strategy: /t/... on a public host is an ordinary (missing) public path
    assert c.get("/t/acme/tanks", base_url=PUBLIC).status_code == 404
    assert c.get("/tanks", base_url=PUBLIC, headers={"X-Tenant": "acme"}).status_code == 404


def test_path_strategy(fresh_db: str) -> None:
    app = _app(fresh_db, TENANTS_IDENTIFICATION=["domain", "subdomain", "path"])
    c = app.test_client()
    assert _tanks(c.get("/t/acme/tanks", base_url=PUBLIC)) == ("acme", ["acme-tank"])
    assert _tanks(c.get("/t/globex/tanks", base_url=PUBLIC)) == ("globex", ["globex-tank"])
    assert _tanks(c.get("/tanks", base_url=ACME)) == ("acme", ["acme-tank"])  # host first
    assert c.get("/t/globex/link", base_url=PUBLIC).data == b"/t/globex/tanks"
    assert c.get("/link", base_url=ACME).data == b"/tanks"
    assert c.get("/t/nope/tanks", base_url=PUBLIC).status_code == 404
    assert c.get("/t/Acme/tanks", base_url=PUBLIC).status_code == 404
    assert c.get("/", base_url=PUBLIC).json == {"tenant": "public"}
    assert c.get("/tanks", base_url=PUBLIC).status_code == 404  # tenant route, public host
    app.extensions["test_tenancy"].deactivate_tenant("globex")
    assert c.get("/t/globex/tanks", base_url=PUBLIC).status_code == 403


def test_path_only_ignores_hosts(fresh_db: str) -> None:
    app = _app(fresh_db, TENANTS_IDENTIFICATION=["path"], TENANTS_PATH_PREFIX="/org")
    c = app.test_client()
    assert _tanks(c.get("/org/acme/tanks", base_url=ACME)) == ("acme", ["acme-tank"])
    assert _tanks(c.get("/org/globex/tanks", base_url=ACME)) == ("globex", ["globex-tank"])
    assert c.get("/tanks", base_url=ACME).status_code == 404  # the host names nobody now
    assert c.get("/", base_url=ACME).json == {"tenant": "public"}


def test_header_strategy_only_from_trusted_proxies(fresh_db: str) -> None:
    app = _app(
        fresh_db,
        TENANTS_IDENTIFICATION=["header", "domain", "subdomain"],
        TENANTS_TRUSTED_PROXIES=["10.1.0.0/16"],
    )
    c = app.test_client()

    def get(base: str, peer: str, tenant: str | None) -> Any:
        headers = {"X-Tenant": tenant} if tenant is not None else {}
        return c.get("/tanks", base_url=base, headers=headers, environ_base={"REMOTE_ADDR": peer})

    assert _tanks(get(PUBLIC, "10.1.2.3", "globex")) == ("globex", ["globex-tank"])
    assert _tanks(get(ACME, "10.1.2.3", "globex")) == ("globex", ["globex-tank"])
    # the same header from anyone else is ignored: the host decides
    assert _tanks(get(ACME, "203.0.113.9", "globex")) == ("acme", ["acme-tank"])
    assert get(PUBLIC, "203.0.113.9", "globex").status_code == 404
    assert get(PUBLIC, "10.1.2.3", "nope").status_code == 404
    assert get(PUBLIC, "10.1.2.3", "x; drop").status_code == 404
