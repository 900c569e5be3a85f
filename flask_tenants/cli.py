"""``flask tenants ...`` commands (click)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

tenants_cli = AppGroup("tenants", help="Manage tenants: create, list, rename, delete, migrate.")


def register_cli(app: Flask) -> None:
    """Add the ``tenants`` command group to ``app.cli`` (once)."""
    if "tenants" not in app.cli.commands:
        app.cli.add_command(tenants_cli)


__all__ = ["tenants_cli", "register_cli", "click"]
