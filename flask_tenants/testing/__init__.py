"""Testing helpers: a throwaway PostgreSQL server and the pytest plugin."""

from .server import ServerHandle, start_embedded_postgres, test_database_url

__all__ = ["ServerHandle", "start_embedded_postgres", "test_database_url"]
