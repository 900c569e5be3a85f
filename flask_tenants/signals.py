"""Tenant signals (blinker, as Flask's own signals), sent only for work that was committed.

=======================  ==================================================================
signal                   keyword arguments (the sender is the app, or None outside one)
=======================  ==================================================================
``tenant_created``       ``tenant`` (name)
``tenant_renamed``       ``tenant`` (new name), ``old_name``
``tenant_deleted``       ``tenant``
``tenant_activated``     ``tenant``
``tenant_deactivated``   ``tenant``
``tenant_migrated``      ``tenant``, ``revision`` (sent by ``flask tenants migrate``)
``tenant_resolved``      ``tenant``, ``host`` (a request was resolved to a tenant)
=======================  ==================================================================

The lifecycle signals are collected while the session flushes and sent from the session's
``after_commit`` event: a tenant created in a transaction that rolls back (or in a savepoint that
rolls back) sends nothing. Receivers run after the data is visible to other connections, so they
may open their own session (``with_db(tenant)``); they must not use the committing session.

Both plain functions and ``async def`` receivers work. Plain receivers are called at once;
coroutine receivers are scheduled as tasks on the running event loop (the async door), or run to
completion with :func:`asyncio.run` when no loop runs in this thread (the sync door).
``await drain()`` waits for the scheduled ones (handy in tests and at shutdown)::

    from flask_tenants.signals import tenant_created

    @tenant_created.connect
    def welcome(sender, tenant, **kw):
        send_welcome_mail(tenant)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine
from typing import Any

from blinker import Namespace, Signal
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, attributes, object_session

from ._frameworks import current_app_or_none

__all__ = [
    "tenant_signals",
    "tenant_created",
    "tenant_renamed",
    "tenant_deleted",
    "tenant_activated",
    "tenant_deactivated",
    "tenant_migrated",
    "tenant_resolved",
    "send",
    "drain",
    "record",
    "record_tenant_update",
    "send_resolved",
]

log = logging.getLogger("flask_tenants.signals")

#: The namespace of flask-tenants' signals.
tenant_signals = Namespace()

tenant_created = tenant_signals.signal(
    "tenant-created", doc="A tenant (row, schema and tables) was committed."
)
tenant_renamed = tenant_signals.signal(
    "tenant-renamed", doc="A tenant's rename (row, schema, domains) was committed."
)
tenant_deleted = tenant_signals.signal(
    "tenant-deleted", doc="A tenant's deletion (row and schema) was committed."
)
tenant_activated = tenant_signals.signal(
    "tenant-activated", doc="A deactivated tenant was re-activated."
)
tenant_deactivated = tenant_signals.signal(
    "tenant-deactivated", doc="A tenant was deactivated (its hosts answer 403)."
)
tenant_migrated = tenant_signals.signal(
    "tenant-migrated", doc="A tenant's schema was migrated to ``revision``."
)
tenant_resolved = tenant_signals.signal(
    "tenant-resolved", doc="A request was resolved to a tenant (sent before the view runs)."
)

_PENDING = "flask_tenants.signals.pending"
_tasks: set[asyncio.Task[Any]] = set()


# -- sending ------------------------------------------------------------------------------------
def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    task = loop.create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_task_done)
    return task


def _task_done(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("An async receiver of a flask-tenants signal failed", exc_info=task.exception())


def send(signal: Signal, sender: Any = None, **kwargs: Any) -> list[tuple[Any, Any]]:
    """Send ``signal`` to its plain and ``async def`` receivers (see the module doc).

    Returns ``(receiver, result)`` pairs; the result of a scheduled coroutine receiver is its
    :class:`asyncio.Task`.
    """
    if not signal.receivers:
        return []
    results = []
    for receiver in signal.receivers_for(sender):
        if inspect.iscoroutinefunction(receiver):
            result = _run_coroutine(receiver(sender, **kwargs))
        else:
            result = receiver(sender, **kwargs)
            if inspect.iscoroutine(result):  # a callable object with an async __call__
                result = _run_coroutine(result)
        results.append((receiver, result))
    return results


async def drain() -> None:
    """Wait for the coroutine receivers scheduled on this loop so far (errors are logged)."""
    loop = asyncio.get_running_loop()
    while True:
        mine = [t for t in _tasks if t.get_loop() is loop and not t.done()]
        if not mine:
            return
        await asyncio.gather(*mine, return_exceptions=True)


# -- collecting during the flush, sending after the commit --------------------------------------
def _current_transaction(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def record(session: Session | None, signal: Signal, **kwargs: Any) -> None:
    """Queue ``signal`` on ``session``: sent after its transaction commits, dropped on rollback.

    Called by the lifecycle's mapper events (:mod:`flask_tenants.lifecycle`) on the flush.
    """
    if session is None:
        return
    pending: list[tuple[SessionTransaction | None, Signal, dict[str, Any]]]
    pending = session.info.setdefault(_PENDING, [])
    pending.append((_current_transaction(session), signal, kwargs))


def record_tenant_update(target: Any) -> None:
    """Queue the signals an UPDATE of tenant ``target`` calls for (rename, (de)activation)."""
    session = object_session(target)
    if session is None:
        return
    name = attributes.get_history(target, "name")
    if name.deleted and name.added and name.deleted[0] != name.added[0]:
        record(session, tenant_renamed, tenant=name.added[0], old_name=name.deleted[0])
    if "deactivated" in attributes.instance_state(target).mapper.attrs:
        flag = attributes.get_history(target, "deactivated")
        if flag.added and flag.deleted and bool(flag.added[0]) != bool(flag.deleted[0]):
            record(
                session,
                tenant_deactivated if flag.added[0] else tenant_activated,
                tenant=target.name,
            )


def _within(txn: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while txn is not None:
        if txn is ended:
            return True
        txn = txn.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        pending[:] = [p for p in pending if not _within(p[0], previous_transaction)]


@event.listens_for(Session, "after_commit")
def _send_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: its events now wait for the outer commit
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    sender = current_app_or_none()
    for _txn, signal, kwargs in pending:
        send(signal, sender, **kwargs)


def send_resolved(resolution: Any) -> None:
    """Send ``tenant_resolved`` for a request resolved to a tenant (called by both doors)."""
    host = resolution.host
    if host is not None and host.startswith("="):
        host = None  # named by the path or header strategy, not by a host
    send(tenant_resolved, current_app_or_none(), tenant=resolution.tenant, host=host)
