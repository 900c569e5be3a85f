"""Fixtures of the security tests: an admin engine on a fresh database, and a real PgBouncer
(Debian's ``pgbouncer``) in transaction pooling mode in front of the test PostgreSQL."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from flask_tenants.testing.server import free_port

PGBOUNCER_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
_OS_USER = "flask_tenants_pg"  # the unprivileged user the embedded server runs as under root


def with_driver(url: str, driver: str) -> str:
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)


@pytest.fixture
def admin(fresh_db: str) -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the fresh database, for checks and server-side faults."""
    engine = create_engine(with_driver(fresh_db, "psycopg"), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def require_or_skip(reason: str) -> None:
    """Skip, or fail when ``CI`` is set: a broken install must not pass as green."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def _pgbouncer_binary() -> str | None:
    for c in PGBOUNCER_CANDIDATES:
        found = shutil.which(c)
        if found:
            return found
    return None


@dataclass
class Bouncer:
    """A running PgBouncer: ``url_for(database, driver)`` gives a URL through it."""

    port: int
    server: URL
    pool_size: int

    def url_for(self, database: str, driver: str) -> str:
        return (
            self.server.set(
                drivername=f"postgresql+{driver}",
                host="127.0.0.1",
                port=self.port,
                database=database,
            )
        ).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pgbouncer(pg_server_url: str) -> Iterator[Bouncer]:
    """Debian's pgbouncer, pool_mode=transaction, on a free 127.0.0.1 port; stopped afterwards."""
    binary = _pgbouncer_binary()
    if binary is None:
        require_or_skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    assert binary is not None
    server = make_url(pg_server_url)
    pool_size = 4
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="flask-tenants-pgbouncer-"))
    user = server.username or "postgres"
    password = server.password or ""
    (base / "users.txt").write_text(f'"{user}" "{password}"\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {base / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "min_pool_size = 0\n"
        "reserve_pool_size = 0\n"
        "max_client_conn = 1000\n"
        "server_reset_query =\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
        f"pidfile = {base / 'pgbouncer.pid'}\n"
    )
    cmd = [binary]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        try:
            pw = pwd.getpwnam(_OS_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    _OS_USER,
                ],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam(_OS_USER)
        for p in (base, *base.iterdir()):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        cmd += ["-u", _OS_USER]
    cmd.append(str(base / "pgbouncer.ini"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    log = base / "pgbouncer.log"
                    out += log.read_text() if log.exists() else ""
                    require_or_skip(f"pgbouncer did not start: {out[-2000:]}")
                time.sleep(0.05)
        yield Bouncer(port, server, pool_size)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        shutil.rmtree(base, ignore_errors=True)
