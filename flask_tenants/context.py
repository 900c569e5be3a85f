"""The current tenant, as a ContextVar: right in threads, greenlets and asyncio tasks alike.

The request hooks of both doors set it; :func:`tenant_context` sets it for code outside requests
(CLI commands, background jobs, tests). The transaction hook in :mod:`flask_tenants.isolation`
reads it when a transaction begins.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType

from .naming import search_path_for, validate_tenant_name

__all__ = ["TenantBinding", "current_tenant", "current_binding", "tenant_context", "public_binding"]

PUBLIC = "public"


@dataclass(frozen=True)
class TenantBinding:
    """A tenant name and the ``search_path`` its transactions run under."""

    name: str
    schema: str | None
    search_path: str

    @property
    def is_public(self) -> bool:
        return self.schema is None


def binding_for(name: str | None, shared_schemas: Iterable[str] = ("public",)) -> TenantBinding:
    """The binding of tenant ``name`` (validated), or of the public schema when None/'public'."""
    shared = tuple(shared_schemas)
    if name is None or name == PUBLIC:
        return public_binding(shared)
    validate_tenant_name(name, shared)
    return TenantBinding(name, name, search_path_for(name, shared))


def public_binding(shared_schemas: Iterable[str] = ("public",)) -> TenantBinding:
    shared = tuple(shared_schemas)
    return TenantBinding(PUBLIC, None, ", ".join(f'"{s}"' for s in shared))


_current: ContextVar[TenantBinding | None] = ContextVar("flask_tenants_current", default=None)


def current_binding() -> TenantBinding | None:
    """The binding in force here, or None outside any tenant context."""
    return _current.get()


def current_tenant() -> str | None:
    """The current tenant's name, ``'public'`` on a public request, None outside any context."""
    b = _current.get()
    return None if b is None else b.name


def _set(binding: TenantBinding | None) -> Token[TenantBinding | None]:
    return _current.set(binding)


def _reset(token: Token[TenantBinding | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # reset from another context (e.g. a copied context): clear instead
        _current.set(None)


class tenant_context:  # noqa: N801 - used like a function, as contextlib helpers are
    """Run a block in a tenant's context (``with`` or ``async with``); nestable.

    Every transaction that *begins* inside the block runs in that tenant's schema::

        with tenant_context("acme"):
            run_report()
    """

    def __init__(self, name: str | None, shared_schemas: Iterable[str] | None = None) -> None:
        if shared_schemas is None:
            shared_schemas = _default_shared_schemas()
        self.binding = binding_for(name, shared_schemas)
        self._tokens: list[Token[TenantBinding | None]] = []

    def __enter__(self) -> TenantBinding:
        self._tokens.append(_set(self.binding))
        return self.binding

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        _reset(self._tokens.pop())

    async def __aenter__(self) -> TenantBinding:
        return self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, ev, tb)


def _default_shared_schemas() -> tuple[str, ...]:
    from .state import current_state_or_none

    state = current_state_or_none()
    return state.settings.shared_schemas if state is not None else ("public",)
