"""Running the app with a role that cannot create or drop schemas.

With ``TENANTS_OWNER_ROLE`` set, a flush that creates, renames or deletes a tenant first runs
``SET LOCAL ROLE <owner>`` (``set_config('role', ..., true)``) on the flush's own connection, and
returns to the previous role when the flush is done: the schema DDL runs as the owner role, in
the same transaction as the tenant row, so a rollback still undoes both. The app's login role
needs only to be a member of the owner role (``GRANT tenants_owner TO tenants_app``); it does
not own or create anything itself. Without the setting, lifecycle DDL runs as the connection's
own role, as before.

The same happens in both doors (an ``AsyncSession`` flushes through its sync ``Session``).
See docs/sections/security.md for the grants and default privileges.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, UOWTransaction, attributes

from .exceptions import ConfigurationError
from .models import TenantMixin

__all__ = ["owner_role_for_flush"]

_PREVIOUS_ROLE = "flask_tenants.previous_role"
_GET_ROLE = text("SELECT current_setting('role')")
_SET_ROLE = text("SELECT set_config('role', :role, true)")


def owner_role_for_flush(session: Session) -> str | None:
    """``TENANTS_OWNER_ROLE`` when this flush creates, renames or deletes a tenant."""
    from .state import state_for_model

    for obj in chain(session.new, session.deleted, session.dirty):
        if not isinstance(obj, TenantMixin):
            continue
        if obj in session.dirty and obj not in session.deleted:
            if not attributes.get_history(obj, "name").has_changes():
                continue
        st = state_for_model(type(obj))
        if st is not None and st.settings.owner_role:
            return st.settings.owner_role
    return None


@event.listens_for(Session, "before_flush")
def _assume_owner(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    role = owner_role_for_flush(session)
    if role is None:
        return
    conn = session.connection()
    previous = conn.execute(_GET_ROLE).scalar_one()
    try:
        conn.execute(_SET_ROLE, {"role": role})
    except DBAPIError as exc:
        raise ConfigurationError(
            f"TENANTS_OWNER_ROLE is {role!r}, but the database user cannot SET ROLE to it: "
            f"run 'GRANT {role} TO <the app's database user>' (or unset TENANTS_OWNER_ROLE)."
        ) from exc
    session.info[_PREVIOUS_ROLE] = previous


@event.listens_for(Session, "after_flush_postexec")
def _drop_owner(session: Session, flush_context: UOWTransaction) -> None:
    previous = session.info.pop(_PREVIOUS_ROLE, None)
    if previous is not None:
        session.connection().execute(_SET_ROLE, {"role": previous})


@event.listens_for(Session, "after_soft_rollback")
def _forget_owner(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_PREVIOUS_ROLE, None)  # the rollback already reverted SET LOCAL ROLE
