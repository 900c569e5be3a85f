"""The limits docs/sections/citus.md lists, checked on the cluster so the documentation stays
true: a cross-tenant join is refused while UNION ALL and for_each_tenant work;
current_schema() next to a tenant table is evaluated on the worker; constraint errors name
shards and keep their SQLSTATE but lose the diagnostic names."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, InternalError, NotSupportedError, ProgrammingError

from flask_tenants import with_db
from flask_tenants.fleet import for_each_tenant

from .app import make_app
from .conftest import CitusDB
from .models import Item

pytestmark = pytest.mark.usefixtures("dispose_engines")


@pytest.fixture(scope="module")
def citus_db(shared_citus_db: CitusDB) -> CitusDB:
    """A database shared with other modules: the tenants here have names of their own."""
    return shared_citus_db


@pytest.fixture(scope="module")
def app(citus_db: CitusDB) -> Any:
    app, tenancy = make_app(citus_db.url_with("psycopg"))
    for n in ("lim0", "lim1", "lim2", "lim3"):
        tenancy.create_tenant(n)
        with app.app_context(), with_db(n) as s:
            s.add_all([Item(name=f"{n}-a", plan_id=1), Item(name=f"{n}-b", plan_id=2)])
            s.commit()
    return app


def test_cross_tenant_joins_fail_but_union_all_and_for_each_tenant_work(app: Any) -> None:
    engine = app.extensions["flask_tenants"].engine
    with engine.connect() as c:
        with pytest.raises((NotSupportedError, InternalError, ProgrammingError), match="join"):
            c.execute(
                text("SELECT count(*) FROM lim0.items a JOIN lim1.items b ON a.name = b.name")
            )
        c.rollback()
        union = c.execute(
            text("SELECT name FROM lim0.items UNION ALL SELECT name FROM lim1.items ORDER BY 1")
        ).scalars()
        assert list(union) == ["lim0-a", "lim0-b", "lim1-a", "lim1-b"]
    with app.app_context():
        counts = dict(
            for_each_tenant(
                lambda s: s.scalar(select(func.count(Item.id))),
                ["lim0", "lim1", "lim2", "lim3"],
            )
        )
    assert counts == {"lim0": 2, "lim1": 2, "lim2": 2, "lim3": 2}


def test_current_schema_next_to_a_tenant_table_is_the_workers(app: Any) -> None:
    with app.app_context(), with_db("lim2") as s:
        alone = s.execute(text("SELECT current_schema()")).scalar()
        with_table = s.execute(text("SELECT current_schema() FROM items LIMIT 1")).scalar()
    assert alone == "lim2"
    assert with_table == "public"  # evaluated on the worker, with its own search_path


def test_constraint_errors_name_shards_and_lose_diagnostic_names(app: Any) -> None:
    with app.app_context(), with_db("lim3") as s:
        first = s.execute(select(Item.id).order_by(Item.id)).scalars().first()
        with pytest.raises(IntegrityError) as info:
            s.execute(text("INSERT INTO items (id, name) VALUES (:i, 'dup')"), {"i": first})
        s.rollback()
    orig = info.value.orig
    assert getattr(orig, "sqlstate", None) == "23505"
    assert "items_pkey_" in str(orig)  # the shard's constraint, e.g. items_pkey_102042
    assert orig.diag.constraint_name is None  # type: ignore[union-attr]
