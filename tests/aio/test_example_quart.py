"""examples/quart_app runs as its docstring says: ``python examples/quart_app/app.py`` serves
on hypercorn, on an embedded PostgreSQL, with the demo tenants acme and globex; SIGTERM stops it
and its database server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flask_tenants.testing.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def call(port: int, host: str, path: str, method: str = "GET", body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Host": host, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


def test_quart_example_serves_two_isolated_tenants() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "examples/quart_app/app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = ""
    try:
        deadline = time.monotonic() + 90
        while "Running on" not in out:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                raise AssertionError(f"example exited early:\n{out}")
            out += line
            assert time.monotonic() < deadline, out
        assert f"curl http://acme.localhost:{port}/tanks" in out
        pg_port = int(re.search(r"127\.0\.0\.1:(\d+)/postgres", out).group(1))  # type: ignore[union-attr]

        assert call(port, "localhost", "/") == (
            200,
            {"schema": "public", "tenants": ["acme", "globex"]},
        )
        status, tank = call(port, "acme.localhost", "/tanks", "POST", {"name": "t1"})
        assert status == 201 and tank["name"] == "t1"
        assert call(port, "acme.localhost", "/tanks")[1] == [tank]
        assert call(port, "globex.localhost", "/tanks") == (200, [])
        assert call(port, "acme.localhost", f"/tanks/{tank['id']}") == (200, tank)
        assert call(port, "globex.localhost", f"/tanks/{tank['id']}")[0] == 404
        assert call(port, "nobody.localhost", "/tanks")[0] == 404
        assert call(port, "localhost", "/tanks")[0] == 404  # tenant route, public host
        assert call(port, "acme.localhost", "/")[1]["tenant"] == "acme"
        created = call(
            port, "localhost", "/tenants", "POST", {"name": "initech", "domain": "i.localhost"}
        )
        assert created == (201, {"name": "initech", "domain": "i.localhost"})
        assert call(port, "i.localhost", "/tanks") == (200, [])
        assert (
            call(
                port, "localhost", "/tenants", "POST", {"name": "Bad-Name", "domain": "b.localhost"}
            )[0]
            == 400
        )
        assert call(port, "localhost", "/tenants/initech", "DELETE")[0] == 204
        assert call(port, "i.localhost", "/tanks")[0] == 404
        assert call(port, "acme.localhost", f"/tanks/{tank['id']}", "DELETE")[0] == 204
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rest = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == 0, out + rest
    with socket.socket() as s:  # the embedded server is gone with it
        assert s.connect_ex(("127.0.0.1", pg_port)) != 0
