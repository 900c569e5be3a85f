"""Tenant signals: sent once per committed change, never for rolled-back work; sync and async
receivers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from flask_tenants import lifecycle, signals
from flask_tenants.signals import (
    tenant_activated,
    tenant_created,
    tenant_deactivated,
    tenant_deleted,
    tenant_migrated,
    tenant_renamed,
)
from tests.sample_app import make_app

ALL = {
    "created": tenant_created,
    "renamed": tenant_renamed,
    "deleted": tenant_deleted,
    "activated": tenant_activated,
    "deactivated": tenant_deactivated,
}


@pytest.fixture
def events() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    got: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = []
    for label, sig in ALL.items():

        def receiver(sender: Any, _label: str = label, **kw: Any) -> None:
            got.append((_label, sender, kw))

        sig.connect(receiver)
        receivers.append((sig, receiver))
    yield got
    for sig, receiver in receivers:
        sig.disconnect(receiver)


def test_lifecycle_signals_in_order(db_url: str, events: list[Any]) -> None:
    app = make_app(db_url)
    tenancy = app.extensions["test_tenancy"]
    tenancy.create_tenant("acme", domains=["acme.example.com"])
    tenancy.rename_tenant("acme", "acme2")
    tenancy.deactivate_tenant("acme2")
    tenancy.deactivate_tenant("acme2")  # no change: no signal
    tenancy.activate_tenant("acme2")
    tenancy.delete_tenant("acme2")
    assert [(e[0], e[2]) for e in events] == [
        ("created", {"tenant": "acme"}),
        ("renamed", {"tenant": "acme2", "old_name": "acme"}),
        ("deactivated", {"tenant": "acme2"}),
        ("activated", {"tenant": "acme2"}),
        ("deleted", {"tenant": "acme2"}),
    ]
    assert all(e[1] is app for e in events)


def test_sent_after_commit_so_receivers_see_the_schema(fresh_db: str) -> None:
    app = make_app(fresh_db)
    seen: list[tuple[str, bool]] = []
    other = create_engine(fresh_db)

    def receiver(sender: Flask, tenant: str, **kw: Any) -> None:
        # another connection: only committed work is visible there
        with other.connect() as conn:
            exists = conn.execute(text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": tenant})
            seen.append((tenant, bool(exists.scalar())))

    tenant_created.connect(receiver)
    try:
        app.extensions["test_tenancy"].create_tenant("acme")
    finally:
        tenant_created.disconnect(receiver)
        other.dispose()
    assert seen == [("acme", True)]


def test_rollback_and_savepoint_rollback_send_nothing(fresh_db: str, events: list[Any]) -> None:
    app = make_app(fresh_db)
    with app.app_context():
        state = app.extensions["flask_tenants"]
        session = state.session_maker()
        try:
            lifecycle.create_tenant(session, state, "gone")
            session.rollback()
            assert events == []

            lifecycle.create_tenant(session, state, "kept")
            nested = session.begin_nested()
            lifecycle.create_tenant(session, state, "undone")
            nested.rollback()
            nested = session.begin_nested()
            lifecycle.create_tenant(session, state, "released")
            nested.commit()  # a savepoint release is not the commit
            assert events == []
            session.commit()
        finally:
            session.close()
    assert [(e[0], e[2]["tenant"]) for e in events] == [
        ("created", "kept"),
        ("created", "released"),
    ]


def test_failed_transaction_sends_nothing(fresh_db: str, events: list[Any]) -> None:
    app = make_app(fresh_db)
    tenancy = app.extensions["test_tenancy"]
    tenancy.create_tenant("acme")
    events.clear()
    with pytest.raises(Exception, match="already"):
        tenancy.create_tenant("acme")
    assert events == []


def test_async_receiver_without_loop_runs_to_completion(fresh_db: str) -> None:
    app = make_app(fresh_db)
    done: list[str] = []

    async def receiver(sender: Flask, tenant: str, **kw: Any) -> None:
        await asyncio.sleep(0)
        done.append(tenant)

    tenant_created.connect(receiver)
    try:
        app.extensions["test_tenancy"].create_tenant("acme")
    finally:
        tenant_created.disconnect(receiver)
    assert done == ["acme"]


async def test_async_receiver_on_running_loop_is_a_task(fresh_db: str) -> None:
    app = make_app(fresh_db)
    done: list[str] = []

    async def receiver(sender: Flask, tenant: str, **kw: Any) -> None:
        await asyncio.sleep(0.01)
        done.append(tenant)

    tenant_created.connect(receiver)
    try:
        app.extensions["test_tenancy"].create_tenant("acme")  # commits inside the running loop
        assert done == []  # scheduled, not awaited by the commit
        await signals.drain()
    finally:
        tenant_created.disconnect(receiver)
    assert done == ["acme"]


def test_send_helper_mixes_sync_and_async_receivers() -> None:
    got: list[str] = []

    def sync_receiver(sender: Any, **kw: Any) -> str:
        got.append("sync:" + kw["tenant"])
        return "s"

    async def async_receiver(sender: Any, **kw: Any) -> str:
        got.append("async:" + kw["tenant"])
        return "a"

    tenant_migrated.connect(sync_receiver)
    tenant_migrated.connect(async_receiver)
    try:
        results = dict(signals.send(tenant_migrated, None, tenant="acme", revision="abc"))
    finally:
        tenant_migrated.disconnect(sync_receiver)
        tenant_migrated.disconnect(async_receiver)
    assert sorted(got) == ["async:acme", "sync:acme"]
    assert results[sync_receiver] == "s" and results[async_receiver] == "a"
    assert signals.send(tenant_migrated, None, tenant="x") == []  # no receivers: nothing to do


def test_tenant_resolved_on_tenant_requests_only(fresh_db: str) -> None:
    from flask_tenants.signals import tenant_resolved

    app = make_app(fresh_db, TENANTS_IDENTIFICATION=["domain", "subdomain", "path"])
    app.extensions["test_tenancy"].create_tenant("acme", domains=["acme.example.com"])
    got: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kw: Any) -> None:
        got.append((sender, kw))

    tenant_resolved.connect(receiver)
    try:
        c = app.test_client()
        assert c.get("/tanks", base_url="http://acme.example.com").status_code == 200
        assert c.get("/", base_url="http://www.example.com").status_code == 200
        assert c.get("/t/acme/tanks", base_url="http://www.example.com").status_code == 200
    finally:
        tenant_resolved.disconnect(receiver)
    assert got == [
        (app, {"tenant": "acme", "host": "acme.example.com"}),
        (app, {"tenant": "acme", "host": None}),
    ]


def test_tenant_migrated_after_each_tenant_upgrade(fresh_db: str, tmp_path: Any) -> None:
    pytest.importorskip("alembic")
    from flask_tenants.migrations import init_tenant_migrations, make_revision, migrate_tenants

    directory = tmp_path / "tenant_migrations"
    app = make_app(fresh_db, TENANTS_MIGRATIONS_DIR=str(directory))
    state = app.extensions["flask_tenants"]
    init_tenant_migrations(directory)
    app.extensions["test_tenancy"].create_tenant("acme")
    app.extensions["test_tenancy"].create_tenant("globex")
    got: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kw: Any) -> None:
        got.append((sender, kw))

    tenant_migrated.connect(receiver)
    try:
        with app.app_context():
            make_revision(state, "noop", autogenerate=False)
            head = state.migrations.heads()[0]
            report = migrate_tenants(state)
            assert [r.status for r in report.results] == ["done", "done"]
            assert migrate_tenants(state).results[0].status == "skipped"  # nothing sent again
    finally:
        tenant_migrated.disconnect(receiver)
    assert got == [
        (app, {"tenant": "acme", "revision": head}),
        (app, {"tenant": "globex", "revision": head}),
    ]
