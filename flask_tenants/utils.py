"""Helpers of the original flask-tenants API: :func:`with_db`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session

from .context import _reset, _set, current_binding
from .isolation import pin_session
from .state import current_state

__all__ = ["with_db"]


@contextmanager
def with_db(database: Any = None, tenant: str | None = None) -> Iterator[Session]:
    """A new Session working in a tenant's schema, closed when the block ends.

    * ``with with_db() as session:`` in a request: the request's tenant (0.4.2 README).
    * ``with with_db(db) as session:``: the same; the ``SQLAlchemy`` argument of the original
      is accepted (the tenancy's own database is used).
    * ``with with_db('acme') as session:`` anywhere with an app context (CLI, scripts, jobs):
      tenant ``acme``. Nestable; the outer tenant is restored afterwards. Every transaction
      begun in the block runs in that tenant's schema -- except on a session pinned to another
      tenant, such as the request's ``g.db_session``, which keeps the request's tenant.

    Nothing is committed for you: call ``session.commit()``.
    """
    if isinstance(database, str):
        tenant, database = database, None
    elif database is not None and not isinstance(database, SQLAlchemy):
        raise TypeError("with_db() takes a tenant name, or the SQLAlchemy instance as before")
    state = current_state()
    if tenant is not None:
        binding = state.binding(tenant)
    else:
        binding = current_binding() or state.public
    session: Session = pin_session(state.session_maker(), binding)
    token = _set(binding)
    try:
        yield session
    finally:
        try:
            session.close()
        finally:
            _reset(token)
