"""One exception hierarchy for the whole library.

Every error says which tenant it is about and what the user can change. Resolution errors are
also Werkzeug HTTP exceptions, so an unhandled one answers 404/403 instead of 500, while the
original flask-tenants ``@app.errorhandler(TenantNotFoundError)`` code keeps working.
"""

from __future__ import annotations

from werkzeug.exceptions import Forbidden, HTTPException, NotFound

__all__ = [
    "FlaskTenantsError",
    "ConfigurationError",
    "InvalidTenantNameError",
    "TenantResolutionError",
    "TenantNotFoundError",
    "TenantActivationError",
    "TenantSchemaMissingError",
    "TenantIsolationError",
    "TenantContextError",
    "TenantExistsError",
    "DomainError",
    "LifecycleError",
    "SchemaCreationError",
    "TableCreationError",
    "SchemaRenameError",
    "SchemaDropError",
]


class FlaskTenantsError(Exception):
    """Base class of every error raised by flask-tenants."""


class ConfigurationError(FlaskTenantsError, RuntimeError):
    """The extension is set up in a way that cannot work; the message says what to change."""


class InvalidTenantNameError(FlaskTenantsError, ValueError):
    """A tenant name that cannot be a PostgreSQL schema name under the library's rules."""

    def __init__(self, name: object, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"Invalid tenant name {name!r}: {reason}. Tenant names are lower-case letters, digits "
            "and underscores, start with a letter, are at most 63 bytes long and are not a "
            "reserved schema name (public, information_schema, pg_*, the shared schemas)."
        )


class TenantResolutionError(FlaskTenantsError, HTTPException):
    """Base of the errors raised while choosing the tenant of a request."""

    code = 404
    description = "The requested tenant could not be resolved."

    def __init__(
        self, tenant: str | None = None, host: str | None = None, message: str = ""
    ) -> None:
        self.tenant = tenant
        self.host = host
        FlaskTenantsError.__init__(self, message or self.description)
        HTTPException.__init__(self, description=message or self.description)

    def __str__(self) -> str:
        return str(self.description)


class TenantNotFoundError(TenantResolutionError, NotFound):
    """No tenant answers to the request's host (HTTP 404)."""

    code = 404
    description = "The requested tenant was not found."


class TenantActivationError(TenantResolutionError, Forbidden):
    """The tenant exists but is deactivated (HTTP 403; flask-tenants 0.4.2 answered 404)."""

    code = 403
    description = "The requested tenant is deactivated."


class TenantSchemaMissingError(TenantResolutionError):
    """The tenant row exists but its schema does not: the catalog and the tenant table disagree.

    Answered as 503 so that it is never mistaken for the tenant's (empty) data; run
    ``flask tenants doctor`` or :func:`flask_tenants.schema.check_consistency` to repair.
    """

    code = 503
    description = "The tenant's schema is missing; the operator has to repair it."


class TenantIsolationError(FlaskTenantsError, RuntimeError):
    """A database access that could not be confined to the current tenant's schema."""


class TenantContextError(FlaskTenantsError, RuntimeError):
    """Tenant work was attempted with no tenant context, or with a context that cannot be used."""


class DomainError(FlaskTenantsError, ValueError):
    """A domain name that is malformed, already taken, or unknown."""


class LifecycleError(FlaskTenantsError):
    """Base of the errors raised by tenant schema lifecycle operations.

    ``tenant`` is the tenant name, ``cause`` the underlying exception (also in ``__cause__``).
    """

    action = "change"

    def __init__(
        self, tenant: str, cause: BaseException | str | None = None, hint: str = ""
    ) -> None:
        self.tenant = tenant
        self.cause = cause
        self.hint = hint
        msg = f"Could not {self.action} the schema of tenant {tenant!r}"
        if cause is not None:
            detail = (
                str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            )
            msg += f": {detail}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class SchemaCreationError(LifecycleError):
    """Creating the tenant's schema failed; nothing was left behind."""

    action = "create"


class TenantExistsError(SchemaCreationError, ValueError):
    """A tenant (or its schema) with that name already exists."""

    action = "create"


class TableCreationError(LifecycleError):
    """Creating the tenant's tables failed; the schema and the tenant row were rolled back."""

    action = "create the tables in"


class SchemaRenameError(LifecycleError):
    """Renaming the tenant's schema failed; the old name is still in force."""

    action = "rename"


class SchemaDropError(LifecycleError):
    """Dropping the tenant's schema failed or was refused; nothing was dropped."""

    action = "drop"
