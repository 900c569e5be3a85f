"""The checker shared by the stress and PgBouncer tests of both doors.

A request is sent for a tenant, maybe with a fault; its answer is checked against that tenant:
every row must carry the tenant's name (the public trap table's rows say 'public'), and the
transaction must have run in the tenant's schema with the tenant's search_path.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from flask_tenants.naming import search_path_for

#: faults the view injects that fail the request (a 5xx is expected)
FAILING = ("raise", "statement", "kill")
#: faults the request survives (a 200 with the right rows is expected)
SURVIVED = ("statement_recovered", "rollback", "write", "two_transactions", "kill_idle")


def full_size() -> bool:
    return os.environ.get("TENANTS_FULL", "") not in ("", "0")


@dataclass
class Stats:
    """Figures of one stress run."""

    label: str
    requests: int = 0
    ok: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rows_checked: int = 0
    wrong_rows: int = 0
    wrong_schema: int = 0
    failed_by_fault: int = 0
    collateral: int = 0  # clean requests failed by a kill of an idle pooled connection
    not_recovered: int = 0
    collateral_details: list[str] = field(default_factory=list)
    kills: int = 0  # pooled connections killed by kill_idle
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> str:
        faults = ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        return (
            f"[{self.label}] requests={self.requests} ok={self.ok}"
            f" faults={sum(self.faults.values())} ({faults})"
            f" failed_by_fault={self.failed_by_fault} collateral={self.collateral}"
            f" idle_kills={self.kills} not_recovered={self.not_recovered}"
            f" rows_checked={self.rows_checked}"
            f" wrong_rows={self.wrong_rows} wrong_schema={self.wrong_schema}"
            f" unexpected={len(self.unexpected)}"
        )

    def assert_clean(self, min_requests: int, failures_per_kill: int = 1) -> None:
        print(self.summary())
        assert self.requests >= min_requests
        assert self.wrong_rows == 0, self.summary()
        assert self.wrong_schema == 0, self.summary()
        assert self.not_recovered == 0, self.summary()
        assert not self.unexpected, self.unexpected[:10]
        assert self.collateral <= failures_per_kill * self.kills, self.summary()
        assert self.ok > self.requests // 2, self.summary()


def pick_fault(rng: random.Random, rate: float, kinds: tuple[str, ...]) -> str:
    return rng.choice(kinds) if rng.random() < rate else ""


def check(stats: Stats, tenant: str, fault: str, status: int, body: Any) -> bool:
    """Record one answer; True when it was a success (200).

    A request may fail only because of its own fault, or -- with a disconnect error -- because
    a connection was killed server-side (``kill_idle`` kills a pooled connection that another
    request may pick up or be using); each kill can fail at most one request.
    """
    want_path = search_path_for(tenant, ("public",))
    with stats.lock:
        stats.requests += 1
        if fault:
            stats.faults[fault] += 1
        if status != 200:
            if fault == "kill" and _disconnect(body):
                stats.failed_by_fault += 1
            elif fault in ("raise", "statement") and status == 500:
                stats.failed_by_fault += 1
            elif status == 500 and _disconnect(body):
                stats.collateral += 1
                stats.collateral_details.append(f"{tenant} fault={fault!r}: {body!r}")
            else:
                stats.unexpected.append(f"{tenant} fault={fault!r}: {status} {body!r}")
            return False
        if fault in FAILING:
            stats.unexpected.append(f"{tenant} fault={fault!r} answered 200")
        stats.ok += 1
        tags = body.get("tags", [])
        stats.rows_checked += len(tags)
        stats.wrong_rows += sum(1 for t in tags if t != tenant)
        if body.get("tenant") != tenant or body.get("schema") != tenant:
            stats.wrong_schema += 1
        elif body.get("path") != want_path:
            stats.wrong_schema += 1
        if not tags:
            stats.unexpected.append(f"{tenant}: no rows at all")
        return True


def _disconnect(body: Any) -> bool:
    """The request failed because its connection was gone (SQLAlchemy invalidated it)."""
    return isinstance(body, dict) and bool(body.get("disconnect"))


def recovered(stats: Stats, ok: bool, body: Any) -> None:
    """Record the follow-up request sent after a failed one: it must work, unless a kill of
    another pooled connection hit it too (then it is counted as collateral, within budget)."""
    if not ok and not _disconnect(body):
        with stats.lock:
            stats.not_recovered += 1


def kill_idle(admin: Engine, application_name: str, rng: random.Random) -> int:
    """Terminate one idle pooled connection of the app (server side); returns how many."""
    with admin.connect() as c:
        pids = list(
            c.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :a "
                    "AND state = 'idle' AND pid <> pg_backend_pid()"
                ),
                {"a": application_name},
            ).scalars()
        )
        if not pids:
            return 0
        c.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": rng.choice(pids)})
        return 1


def written_rows_check(admin: Engine, tenants: list[str]) -> int:
    """Rows in a tenant's table that are not the tenant's, plus non-trap rows in public."""
    wrong = 0
    with admin.connect() as c:
        for t in tenants:
            # names come from our own TENANT_NAMES list; quoted by the server
            q = text("SELECT count(*) FROM " + f'"{t}".items WHERE tenant <> :t')  # noqa: S608
            wrong += c.execute(q, {"t": t}).scalar_one()
        wrong += c.execute(
            text("SELECT count(*) FROM public.items WHERE tenant <> 'public'")
        ).scalar_one()
    return wrong
