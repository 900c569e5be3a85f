from tests.sample_app import make_app


def test_readme_flow(db_url: str) -> None:
    app = make_app(db_url)
    c = app.test_client()
    assert c.get("/", base_url="http://www.example.com").json == {"tenant": "public"}
    r = c.post(
        "/tenants",
        json={"name": "acme", "domain": "acme.example.com"},
        base_url="http://www.example.com",
    )
    assert r.status_code == 201, r.data
    c.post(
        "/tenants",
        json={"name": "globex", "domain": "globex.example.com"},
        base_url="http://www.example.com",
    )
    r = c.post("/tanks", json={"name": "a1"}, base_url="http://acme.example.com")
    assert r.status_code == 201, r.data
    r = c.get("/tanks", base_url="http://acme.example.com")
    assert r.json == {"tenant": "acme", "tanks": ["a1"]}
    r = c.get("/tanks", base_url="http://globex.example.com")
    assert r.json == {"tenant": "globex", "tanks": []}
    assert c.get("/tanks", base_url="http://nope.example.com").status_code == 404
    assert c.get("/_tenant/tanks", base_url="http://www.example.com").status_code == 404
