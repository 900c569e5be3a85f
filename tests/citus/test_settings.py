"""TENANTS_CITUS on plain PostgreSQL (the suite's embedded server; no cluster needed): 'auto' (the
default) creates plain schemas and asks the catalog once per engine; True refuses with a message
that says what to do; bad values are refused when the app starts."""

from __future__ import annotations

import pytest

from flask_tenants.config import TenancySettings
from flask_tenants.exceptions import ConfigurationError
from tests.sample_app import engine_of, make_app, recorded_statements, tenancy_of

pytestmark = pytest.mark.usefixtures("dispose_engines")


def test_auto_on_plain_postgresql_asks_once_per_engine(fresh_db: str) -> None:
    app = make_app(fresh_db)
    assert app.extensions["flask_tenants"].settings.citus == "auto"
    with recorded_statements(engine_of(app)) as log:
        tenancy_of(app).create_tenant("one")
        tenancy_of(app).create_tenant("two")
    asked = [s for s, _ in log if "pg_extension" in s]
    assert len(asked) == 1
    assert not any("citus" in s and "pg_extension" not in s for s, _ in log)


def test_true_without_the_extension_says_what_to_do(fresh_db: str) -> None:
    app = make_app(fresh_db, TENANTS_CITUS=True)
    with pytest.raises(ConfigurationError, match="CREATE EXTENSION citus"):
        tenancy_of(app).create_tenant("one")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("auto", "auto"), ("AUTO", "auto"), ("off", False), ("1", True)],
)
def test_values(value: object, expected: object) -> None:
    assert TenancySettings.from_mapping({"TENANTS_CITUS": value}).citus == expected


@pytest.mark.parametrize("bad", ["sometimes", 2])
def test_bad_values_are_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="TENANTS_CITUS must be"):
        TenancySettings.from_mapping({"TENANTS_CITUS": bad})


def test_reference_tables_setting() -> None:
    s = TenancySettings.from_mapping({"TENANTS_CITUS_REFERENCE_TABLES": ["Plans", "geo.countries"]})
    assert s.citus_reference_tables == ("Plans", "geo.countries")
    for bad in (["a.b.c"], [""], [3], "."):
        with pytest.raises(ConfigurationError, match="TENANTS_CITUS_REFERENCE_TABLES"):
            TenancySettings.from_mapping({"TENANTS_CITUS_REFERENCE_TABLES": bad})
