"""Lifecycle under faults: a failure injected at every step of create, rename and delete.

Each operation is first run cleanly to learn its statements; then, for every statement k, the
operation is run again with a fault at k -- an exception raised before the statement is sent,
an exception raised after it ran, the connection killed server-side just before it -- and at
commit (an exception in SQLAlchemy's commit event, and a deferred trigger that makes the
server's COMMIT itself fail after all the DDL ran). After each fault the tenant table and the
catalog must agree (:func:`flask_tenants.schema.check_consistency`, plus a direct look at the
catalog) and the state must be exactly the one before the operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from flask_tenants import with_db

from ._app import Item, consistency, create_shared, make_app, make_engine
from .conftest import with_driver


class InjectedFault(RuntimeError):
    pass


@dataclass
class Injector:
    """Counts the statements of the operation under test and fails at one of them."""

    admin: Engine
    at: int = 0  # 1-based statement to fail at; 0 = none
    mode: str = "before"  # before | after | kill
    count: int = 0
    armed: bool = False
    seen: list[str] | None = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if not self.armed:
            return
        self.count += 1
        if self.seen is not None:
            self.seen.append(statement)
        if self.count != self.at:
            return
        if self.mode == "before":
            raise InjectedFault(f"before statement {self.at}: {statement[:60]}")
        if self.mode == "kill":
            pid = conn.connection.dbapi_connection.info.backend_pid
            with self.admin.connect() as a:
                a.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})

    def _after(self, conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if self.armed and self.count == self.at and self.mode == "after":
            raise InjectedFault(f"after statement {self.at}: {statement[:60]}")


@dataclass
class World:
    app: Any
    ext: Any
    engine: Engine
    admin: Engine
    injector: Injector

    def snapshot(self) -> tuple[Any, ...]:
        """Tenants, domains, non-system schemas, and each tenant schema's rows."""
        with self.admin.connect() as c:
            tenants = sorted(c.execute(text("SELECT name FROM tenants")).scalars())
            domains = sorted(
                tuple(r) for r in c.execute(text("SELECT tenant_name, domain_name FROM domains"))
            )
            schemas = sorted(
                c.execute(
                    text(
                        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                        "AND nspname NOT IN ('information_schema', 'public')"
                    )
                ).scalars()
            )
            rows = {}
            for s in schemas:
                # schema names come from the catalog of our own throwaway database
                q = text(f'SELECT count(*), min(tenant) FROM "{s}".items')  # noqa: S608
                rows[s] = tuple(c.execute(q).one())
        return tenants, domains, schemas, rows

    def assert_consistent(self, tags: bool = True) -> None:
        cons = consistency(self.admin)
        assert not cons.tenants_without_schema, cons
        assert not cons.orphan_schemas, cons
        assert not cons.tenants_missing_tables, cons
        tenants, _, schemas, rows = self.snapshot()
        assert tenants == schemas, (tenants, schemas)  # no schema without row, no row without
        for s in schemas if tags else ():
            assert rows[s][1] in (None, s), rows  # each schema holds its own tenant's rows


@pytest.fixture(params=["psycopg", "psycopg2"])
def world(request: pytest.FixtureRequest, fresh_db: str, admin: Engine) -> Iterator[World]:
    engine = make_engine(with_driver(fresh_db, request.param), pool_size=2)
    create_shared(engine, trap=False)
    with admin.connect() as c:
        c.execute(text("CREATE TABLE fault_switch (fail_commit boolean NOT NULL)"))
        c.execute(text("INSERT INTO fault_switch VALUES (false)"))
        c.execute(
            text(
                "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF (SELECT fail_commit FROM public.fault_switch) THEN "
                "RAISE EXCEPTION 'commit refused by the test trigger'; END IF; "
                "RETURN NULL; END $$"
            )
        )
        c.execute(
            text(
                "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT OR UPDATE OR DELETE "
                "ON tenants DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION fail_at_commit()"
            )
        )
    app, ext = make_app(engine, admin)
    injector = Injector(admin)
    injector.install(engine)
    w = World(app, ext, engine, admin, injector)
    with app.app_context():
        ext.create_tenant("victim", domains=["victim.example.com", "shop.victim.test"])
        ext.create_tenant("bystander", domains=["bystander.example.com"])
        for name in ("victim", "bystander"):
            with with_db(name) as s:
                s.add_all([Item(tenant=name, payload="seed") for _ in range(3)])
                s.commit()
    try:
        yield w
    finally:
        engine.dispose()


OPERATIONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    # name: (operation, undo)
    "create": (
        lambda ext: ext.create_tenant("newcomer", domains=["newcomer.example.com"]),
        lambda ext: ext.delete_tenant("newcomer"),
    ),
    "rename": (
        lambda ext: ext.rename_tenant("victim", "renamed"),
        lambda ext: ext.rename_tenant("renamed", "victim"),
    ),
    "delete": (
        lambda ext: ext.delete_tenant("victim"),
        lambda ext: _recreate_victim(ext),
    ),
}


def _recreate_victim(ext: Any) -> None:
    ext.create_tenant("victim", domains=["victim.example.com", "shop.victim.test"])
    with with_db("victim") as s:
        s.add_all([Item(tenant="victim", payload="seed") for _ in range(3)])
        s.commit()


def _learn(w: World, op: str) -> list[str]:
    do, undo = OPERATIONS[op]
    w.injector.seen = []
    w.injector.count = 0
    w.injector.at = 0
    w.injector.armed = True
    try:
        do(w.ext)
    finally:
        w.injector.armed = False
    seen = w.injector.seen
    w.injector.seen = None
    undo(w.ext)
    return seen


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_fault_at_every_step(world: World, op: str) -> None:
    w = world
    with w.app.app_context():
        statements = _learn(w, op)
        assert len(statements) >= 3, statements
        before = w.snapshot()
        w.assert_consistent()
        faults = 0
        for mode in ("before", "after", "kill"):
            for k in range(1, len(statements) + 1):
                w.injector.count = 0
                w.injector.at = k
                w.injector.mode = mode
                w.injector.armed = True
                with pytest.raises(Exception) as info:  # noqa: B017,PT011 - any failure will do
                    OPERATIONS[op][0](w.ext)
                w.injector.armed = False
                faults += 1
                assert w.snapshot() == before, (mode, k, statements[k - 1], info.value)
                w.assert_consistent()
        # at commit: SQLAlchemy's commit event, then the server's COMMIT itself
        for where in ("event", "server"):
            w.injector.at = 0
            if where == "event":

                def refuse(conn: Any) -> None:
                    raise InjectedFault("at commit")

                event.listen(w.engine, "commit", refuse)
            else:
                with w.admin.connect() as c:
                    c.execute(text("UPDATE fault_switch SET fail_commit = true"))
            try:
                with pytest.raises(Exception, match="at commit|commit refused"):
                    OPERATIONS[op][0](w.ext)
            finally:
                if where == "event":
                    event.remove(w.engine, "commit", refuse)
                else:
                    with w.admin.connect() as c:
                        c.execute(text("UPDATE fault_switch SET fail_commit = false"))
            faults += 1
            assert w.snapshot() == before, where
            w.assert_consistent()
        # and the operation still works afterwards, on the same pool
        OPERATIONS[op][0](w.ext)
        w.assert_consistent(tags=False)  # a renamed tenant keeps rows written under its old name
        print(f"[lifecycle {op}] {len(statements)} statements, {faults} faults injected")
