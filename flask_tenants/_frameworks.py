"""The one place that knows Flask's and Quart's app globals apart."""

from __future__ import annotations

import sys
from typing import Any

EXTENSION_KEY = "flask_tenants"


def current_app_or_none() -> Any | None:
    """The Flask or Quart app of the current context, or None outside any app context."""
    import flask

    if flask.has_app_context():
        return flask.current_app._get_current_object()  # type: ignore[attr-defined]
    quart = sys.modules.get("quart")
    if quart is not None and quart.has_app_context():
        return quart.current_app._get_current_object()
    return None
