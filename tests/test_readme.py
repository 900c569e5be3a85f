"""The README's code samples, run as written.

Blocks preceded by ``<!-- readme-test: PATH -->`` are written to PATH in a scratch directory and
run together as an app in a subprocess (the models register on the process-wide
``flask_tenants.db``); every other Python block must at least compile.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<path>\S+) -->\n)?(?P<indent> *)```python\n(?P<code>.*?)```", re.S
)


def _blocks() -> list[tuple[str | None, str]]:
    return [
        (m.group("path"), textwrap.dedent(m.group("code")))
        for m in _BLOCK.finditer(README.read_text())
    ]


def test_every_python_block_compiles() -> None:
    blocks = _blocks()
    assert len(blocks) >= 8
    for i, (_, code) in enumerate(blocks):
        # top-level await / async with / async for stand for code inside a coroutine
        compile(code, f"README.md block {i}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


GLUE = """
import json, sys
from flask import Blueprint, g, jsonify
from app import app, tenancy
from public.models import Tenant, Domain
from tanks.models import Tank
from errors import register_error_handlers
from flask_tenants import db

register_error_handlers(app)
bp = tenancy.create_tenant_blueprint("tank")

@bp.route("/tanks")
def tanks():
    return jsonify([t.name for t in g.db_session.query(Tank).all()])

app.register_blueprint(bp)
with app.app_context():
    db.create_all()
    tenancy.create_tenant("acme", domains=["acme.example.com"])
    tenancy.create_tenant("globex", domains=["globex.example.com"])
    from flask_tenants.utils import with_db
    with with_db("acme") as session:
        session.add(Tank(name="a-tank"))
        session.commit()
    tenancy.deactivate_tenant("globex")
c = app.test_client()
out = {
    "acme": c.get("/tanks", base_url="http://acme.example.com").get_json(),
    "globex": c.get("/tanks", base_url="http://globex.example.com").status_code,
    "nobody": c.get("/tanks", base_url="http://nobody.example.com").get_json(),
}
print("RESULT " + json.dumps(out))
"""


def test_readme_app_runs_as_written(tmp_path: Path, fresh_db: str) -> None:
    written = 0
    for path, code in _blocks():
        if path is None:
            continue
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        (target.parent / "__init__.py").touch()
        if path == "app.py":
            assert "postgresql://user:password@localhost/dbname" in code
            code = code.replace("postgresql://user:password@localhost/dbname", fresh_db)
        target.write_text(code)
        written += 1
    assert written == 4
    (tmp_path / "main.py").write_text(textwrap.dedent(GLUE))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "main.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["acme"] == ["a-tank"]
    assert out["globex"] == 403
    assert out["nobody"] == {
        "error": "TenantNotFoundError",
        "message": "The requested tenant was not found.",
    }


@pytest.mark.parametrize("cmd", [1, 2])
def test_readme_shows_the_two_commands(cmd: int) -> None:
    spec = (Path(__file__).resolve().parent.parent / ".ci" / "readme-commands").read_text()
    commands = [ln.split("$ ", 1)[1] for ln in spec.splitlines() if ln.strip().startswith("$ ")]
    assert commands[cmd - 1] in README.read_text()
