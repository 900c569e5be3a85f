"""tenant_url_prefix routing: tenant routes without the prefix on tenant hosts, public routes only
on public hosts, static files everywhere, url_for without the prefix, and no way around the host
(headers, prefixed paths, path tricks) to reach a tenant's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, g, jsonify, render_template_string, url_for
from flask.testing import FlaskClient

from tests.sample_app import PUBLIC_URL, make_app_with, seed_tanks, tenant_url

pytestmark = pytest.mark.usefixtures("dispose_engines")

routing_tenant_bp = Blueprint("routing_tenant", __name__)
routing_public_bp = Blueprint("routing_public", __name__)


@routing_tenant_bp.route("/")
def tenant_home():  # type: ignore[no-untyped-def]
    return jsonify({"home": g.tenant})


@routing_tenant_bp.route("/whoami")
def whoami():  # type: ignore[no-untyped-def]
    return jsonify(
        {
            "tenant": g.tenant,
            "self": url_for(".whoami"),
            "tanks": url_for("tank.tank_bp.list_tanks"),
            "external": url_for("tank.tank_bp.list_tanks", _external=True),
            "static": url_for("static", filename="hello.txt"),
        }
    )


@routing_tenant_bp.route("/template")
def template():  # type: ignore[no-untyped-def]
    return render_template_string(
        "{{ url_for('tank.tank_bp.list_tanks') }}"
        "|{{ url_for('extra_tenant.routing_tenant.whoami') }}"
        "|{{ url_for('static', filename='hello.txt') }}"
    )


@routing_tenant_bp.route("/slashed/")
def slashed():  # type: ignore[no-untyped-def]
    return jsonify({"slashed": g.tenant})


@routing_public_bp.route("/about")
def about():  # type: ignore[no-untyped-def]
    return jsonify({"about": g.tenant})


TANK_ROWS = {"acme": 2, "globex": 2}
ALL_TANK_NAMES = [f"{t}-{i}" for t, n in TANK_ROWS.items() for i in range(n)]


@pytest.fixture
def app(fresh_db: str, tmp_path: Path) -> Flask:
    (tmp_path / "hello.txt").write_text("hello static")
    app = make_app_with(
        fresh_db,  # routing does not depend on the driver: the plain URL's default one
        tenant_blueprints=[routing_tenant_bp],
        public_blueprints=[routing_public_bp],
        static_folder=str(tmp_path),
    )

    @app.route("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify({"health": g.tenant})

    seed_tanks(app, TANK_ROWS)
    return app


def get(client: FlaskClient, path: str, base: str = PUBLIC_URL, **kw: Any) -> Any:
    r = client.get(path, base_url=base, **kw)
    assert r.status_code < 500, r.get_data(as_text=True)
    return r


def assert_no_tenant_data(response: Any) -> None:
    body = response.get_data(as_text=True)
    assert not any(name in body for name in ALL_TANK_NAMES), body


def test_tenant_routes_answer_without_prefix_on_tenant_hosts(app: Flask) -> None:
    c = app.test_client()
    for t in TANK_ROWS:
        r = get(c, "/tanks", tenant_url(t))
        assert r.json == {"tenant": t, "tanks": [f"{t}-0", f"{t}-1"]}
        assert get(c, "/", tenant_url(t)).json == {"home": t}
        assert get(c, "/health", tenant_url(t)).json == {"health": t}
        assert get(c, "/slashed/", tenant_url(t)).json == {"slashed": t}
    # the same path on a public host is the public route
    assert get(c, "/").json == {"tenant": "public"}
    assert get(c, "/health").json == {"health": "public"}


def test_public_only_routes_are_404_on_tenant_hosts(app: Flask) -> None:
    c = app.test_client()
    for path in ("/tenants", "/about"):
        assert get(c, path).status_code == 200
        assert get(c, path, tenant_url("acme")).status_code == 404
    r = c.post(
        "/tenants", json={"name": "evil", "domain": "evil.x.io"}, base_url=tenant_url("acme")
    )
    assert r.status_code in (404, 405)
    assert get(c, "/tenants").json == ["acme", "globex"]


def test_routes_added_after_requests_are_routed(app: Flask) -> None:
    """Routing decisions are remembered per path; a rule added to the URL map later (Flask
    refuses add_url_rule then, werkzeug's Map.add does not) makes them be taken again."""
    from werkzeug.routing import Rule

    c = app.test_client()
    assert get(c, "/late", tenant_url("acme")).status_code == 404
    assert get(c, "/late", tenant_url("acme")).status_code == 404  # the remembered decision
    app.view_functions["late"] = lambda: jsonify({"late": g.tenant})
    app.url_map.add(Rule("/late", endpoint="late"))
    assert get(c, "/late", tenant_url("acme")).json == {"late": "acme"}


def test_static_files_are_served_on_every_host(app: Flask) -> None:
    c = app.test_client()
    for base in (PUBLIC_URL, tenant_url("acme"), "http://localhost"):
        r = get(c, "/static/hello.txt", base)
        assert r.status_code == 200 and r.data == b"hello static"
        r.close()


def test_url_for_builds_urls_without_the_prefix_in_tenant_requests(app: Flask) -> None:
    c = app.test_client()
    assert get(c, "/whoami", tenant_url("acme")).json == {
        "tenant": "acme",
        "self": "/whoami",
        "tanks": "/tanks",
        "external": "http://acme.example.com/tanks",
        "static": "/static/hello.txt",
    }
    r = get(c, "/template", tenant_url("acme"))
    assert r.get_data(as_text=True) == "/tanks|/whoami|/static/hello.txt"
    # an app mounted below a script root keeps it
    r = get(c, "/whoami", tenant_url("acme") + "/app")
    assert r.json["tanks"] == "/app/tanks"
    assert r.json["external"] == "http://acme.example.com/app/tanks"


PUBLIC_HOSTS = ["www.example.com", "localhost", "127.0.0.1", "[::1]", "local.test"]
PREFIXED_PATHS = ["/_tenant/tanks", "/_tenant/whoami", "/_tenant/", "/_tenant", "/_tenant/slashed/"]


def test_prefixed_urls_on_public_hosts_expose_nothing(app: Flask) -> None:
    c = app.test_client()
    for host in PUBLIC_HOSTS:
        for path in PREFIXED_PATHS:
            r = get(c, path, f"http://{host}")
            assert r.status_code in (404, 308), (host, path, r.status_code)
            assert_no_tenant_data(r)
        r = c.post("/_tenant/tanks", json={"name": "planted"}, base_url=f"http://{host}")
        assert r.status_code == 404
    for t in TANK_ROWS:
        assert "planted" not in get(c, "/tanks", tenant_url(t)).get_data(as_text=True)


def test_the_prefix_is_not_a_path_on_tenant_hosts(app: Flask) -> None:
    c = app.test_client()
    for path in ("/_tenant/tanks", "/_tenant/_tenant/tanks", "/_tenant/whoami", "/_tenant/"):
        r = get(c, path, tenant_url("acme"))
        assert r.status_code == 404, path


HEADER_TRICKS = [
    {"X-Tenant": "acme"},
    {"X-Tenant-Name": "acme"},
    {"X-Forwarded-Host": "acme.example.com"},
    {"X-Forwarded-Server": "acme.example.com"},
    {"X-Original-Host": "acme.example.com"},
    {"X-Host": "acme.example.com"},
    {"Forwarded": "host=acme.example.com"},
    {"X-Forwarded-Prefix": "/_tenant"},
    {"X-Original-URL": "/_tenant/tanks"},
    {"X-Rewrite-URL": "/_tenant/tanks"},
]


def test_no_header_picks_a_tenant(app: Flask) -> None:
    c = app.test_client()
    for headers in HEADER_TRICKS:
        for path in ("/tanks", "/_tenant/tanks", "/whoami"):
            r = get(c, path, headers=headers)
            assert r.status_code == 404, (headers, path)
            assert_no_tenant_data(r)
        assert get(c, "/", headers=headers).json == {"tenant": "public"}
        # on a tenant host the host wins over any header
        r = get(c, "/tanks", tenant_url("globex"), headers=headers)
        assert r.json == {"tenant": "globex", "tanks": ["globex-0", "globex-1"]}
    # SERVER_NAME does not override the Host header either
    r = get(c, "/tanks", environ_overrides={"SERVER_NAME": "acme.example.com"})
    assert r.status_code == 404


PATH_TRICKS = [
    "/_tenant/../_tenant/tanks",
    "/x/../_tenant/tanks",
    "//_tenant/tanks",
    "/_tenant//tanks",
    "/./_tenant/tanks",
    "/_tenant/./tanks",
    "/%5Ftenant/tanks",
    "/_tenant%2Ftanks",
    "/_TENANT/tanks",
    "/_tenant;/tanks",
    "/_tenant/tanks;acme",
    "/_tenant/tanks?tenant=acme",
    "/_tenant\\tanks",
    "/_tenant/tanks%00",
    "/ /_tenant/tanks",
]


def test_no_path_trick_reaches_tenant_routes_on_public_hosts(app: Flask) -> None:
    c = app.test_client()
    for path in PATH_TRICKS:
        r = get(c, path)
        assert r.status_code in (404, 308, 400), (path, r.status_code)
        assert_no_tenant_data(r)
        if r.status_code == 308:  # a canonicalising redirect: following it ends in a 404 too
            followed = get(c, r.headers["Location"])
            assert followed.status_code == 404, path
            assert_no_tenant_data(followed)
    # and on a tenant host no trick reaches another tenant
    for path in ["/../tanks", "/tanks/../tanks", "/%2e%2e/globex/tanks", "/tanks?tenant=globex"]:
        r = get(c, path, tenant_url("acme"))
        assert "globex-" not in r.get_data(as_text=True), path


def test_redirects_do_not_leak_the_prefix(app: Flask) -> None:
    c = app.test_client()
    r = get(c, "/slashed?x=1", tenant_url("acme"))
    assert r.status_code == 308
    assert r.headers["Location"] in ("http://acme.example.com/slashed/?x=1", "/slashed/?x=1")
    assert get(c, r.headers["Location"], tenant_url("acme")).json == {"slashed": "acme"}
    r = get(c, "/slashed//", tenant_url("acme"))  # merge_slashes
    assert r.status_code == 308 and "_tenant" not in r.headers["Location"]
    r = get(c, "/slashed", tenant_url("acme") + "/app")
    assert r.status_code == 308
    assert "_tenant" not in r.headers["Location"]
    assert r.headers["Location"].endswith("/app/slashed/")
    for name in ("globex", "acme", "globex"):  # routing decisions are remembered, redirects not
        r = get(c, "/slashed?x=1", tenant_url(name))
        assert r.headers["Location"] in (f"http://{name}.example.com/slashed/?x=1", "/slashed/?x=1")


def with_proxy_fix(app: Flask) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_host=1)  # type: ignore[method-assign]


def test_proxy_fix_installed_after_the_extension_routes_by_the_forwarded_host(app: Flask) -> None:
    with_proxy_fix(app)  # the app opts into X-Forwarded-Host
    c = app.test_client()
    forwarded = {"X-Forwarded-Host": "acme.example.com"}
    r = get(c, "/tanks", headers=forwarded)
    assert r.json == {"tenant": "acme", "tanks": ["acme-0", "acme-1"]}
    assert get(c, "/tenants", headers=forwarded).status_code == 404
    assert get(c, "/_tenant/tanks", headers=forwarded).status_code == 404


def test_proxy_fix_installed_before_the_extension_never_mixes_scopes(fresh_db: str) -> None:
    # The app wraps its wsgi_app before initialising flask-tenants: the path rewriting sees the
    # proxy's Host, the request hook the forwarded one. Public routes must still never run in a
    # tenant's schema, and nothing may reach another tenant.
    from flask_tenants import create_tenancy, db
    from flask_tenants import init_app as tenants_init_app
    from tests.sample_app import Domain, Tenant, public_bp, tank_bp

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = fresh_db
    with_proxy_fix(app)
    tenants_init_app(app, tenant_model=Tenant, domain_model=Domain)
    tenancy = create_tenancy(app, db, tenant_url_prefix="/_tenant")
    root_public = tenancy.create_public_blueprint("public")
    root_tank = tenancy.create_tenant_blueprint("tank")
    root_public.register_blueprint(public_bp)
    root_tank.register_blueprint(tank_bp)
    app.register_blueprint(root_public)
    app.register_blueprint(root_tank)
    with app.app_context():
        db.create_all()
    seed_tanks(app, TANK_ROWS)
    c = app.test_client()
    forwarded = {"X-Forwarded-Host": "acme.example.com"}
    for path in ("/", "/tenants"):  # public routes, asked for acme
        assert get(c, path, headers=forwarded).status_code == 404, path
    for path in ("/tanks", "/_tenant/tanks"):
        assert "globex-" not in get(c, path, headers=forwarded).get_data(as_text=True)
    assert get(c, "/tenants").json == ["acme", "globex"]  # the public host is unaffected
