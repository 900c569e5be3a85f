"""Shared plumbing of the request benchmarks: a database server, interleaved timing, tables."""

from __future__ import annotations

import gc
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

_server = None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def server_url(
    stat_statements: bool = True, conf: dict[str, str] | None = None
) -> tuple[str, bool]:
    """``(url, has_pg_stat_statements)``: ``DATABASE_URL``, else a new embedded server (with
    the extra postgresql.conf settings ``conf``)."""
    global _server
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, _has_stat_statements(url)
    from flask_tenants.testing.server import start_embedded_postgres

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # a benchmark stopped with kill/timeout still stops its server (atexit runs on exit)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    extra = {"shared_preload_libraries": "'pg_stat_statements'"} if stat_statements else {}
    extra["max_connections"] = "400"
    extra.update(conf or {})
    try:
        _server = start_embedded_postgres(extra_conf=extra)
    except RuntimeError:
        if not stat_statements:
            raise
        _server = start_embedded_postgres()
    if _nice:
        # the postmaster forks every backend: they inherit its priority
        pid = int((_server.datadir / "postmaster.pid").read_text().split()[0])
        os.setpriority(os.PRIO_PROCESS, pid, _nice)
    return _server.url, _has_stat_statements(_server.url)


_nice = 0


def set_priority(nice: int) -> None:
    """Run this process, what it starts and its embedded server at ``nice`` (root: < 0).

    On a machine shared with other work, a higher priority for the benchmark (both contestants
    alike) keeps the other work from deciding the figures.
    """
    global _nice
    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        _nice = nice


def _has_stat_statements(url: str) -> bool:
    eng = create_engine(
        make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with eng.connect() as c:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            c.execute(text("SELECT pg_stat_statements_reset()"))
        return True
    except Exception:
        return False
    finally:
        eng.dispose()


def ensure_database(url: str, name: str, fresh: bool = False) -> str:
    """The URL (no driver) of database ``name`` on the server of ``url``, created if missing."""
    admin = create_engine(
        make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as c:
            exists = c.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if exists and fresh:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = None
            if not exists:
                c.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def with_driver(url: str, driver: str) -> str:
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)


@dataclass
class Series:
    """One contestant's figures, one per round: requests per second and CPU per request."""

    name: str
    rps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # seconds of CPU (client + server) per request
    server_cpu: list[float] = field(default_factory=list)  # of which PostgreSQL's

    @property
    def median(self) -> float:
        return statistics.median(self.rps) if self.rps else float("nan")

    @property
    def server_cpu_per_request(self) -> float:
        return statistics.fmean(self.server_cpu) if self.server_cpu else float("nan")

    @property
    def best(self) -> float:
        return max(self.rps) if self.rps else float("nan")

    @property
    def cpu_per_request(self) -> float:
        return statistics.fmean(self.cpu) if self.cpu else float("nan")


_HZ = os.sysconf("SC_CLK_TCK")


def process_cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds used so far by each live process of ``pids`` (Linux: /proc/PID/schedstat,
    nanoseconds; falls back to /proc/PID/stat, clock ticks). Gone processes are left out."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as fh:
                out[pid] = int(fh.read().split()[0]) / 1e9
            continue
        except (OSError, IndexError, ValueError):
            pass
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / _HZ
        except (OSError, IndexError, ValueError):
            pass
    return out


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds used so far by processes ``pids`` together."""
    return sum(process_cpu_by_pid(pids).values())


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two :func:`process_cpu_by_pid` readings by processes alive at both (a
    backend that exits in between -- an idle pooled connection closed -- is not counted)."""
    return sum(after[p] - before[p] for p in before.keys() & after.keys())


Contestant = tuple[str, Callable[[int], None], Callable[[], Sequence[int]]]


def interleave(contestants: Sequence[Contestant], rounds: int, requests: int) -> list[Series]:
    """Run each contestant's ``fn(requests)`` once per round, the order rotating every round.

    A contestant is ``(name, fn, server_pids)``; ``server_pids()`` lists the PostgreSQL backends
    serving it, whose CPU time is added to this process's. Short rounds, rotated, on a noisy
    shared machine: compare within a round (median of the per-round ratios), the best rounds,
    and CPU per request, which load on other cores hardly moves.
    """
    series = [Series(c[0]) for c in contestants]
    n = len(contestants)
    for r in range(rounds):
        order = list(range(n))
        order = order[r % n :] + order[: r % n]
        if r % 2:
            order.reverse()
        for idx in order:
            _, fn, pids_of = contestants[idx]
            pids = pids_of()
            gc.collect()
            s0 = process_cpu_by_pid(pids)
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn(requests)
            dt = time.perf_counter() - t0
            c1 = time.process_time()
            server = cpu_delta(s0, process_cpu_by_pid(pids))
            series[idx].rps.append(requests / dt)
            series[idx].cpu.append((c1 - c0 + server) / requests)
            series[idx].server_cpu.append(server / requests)
    return series


def round_ratios(a: Series, b: Series) -> list[float]:
    """``a / b`` within each round."""
    return [x / y for x, y in zip(a.rps, b.rps, strict=True)]


def fmt_ratio(ratios: Sequence[float]) -> str:
    """Median of per-round ratios, with the interquartile range of the rounds."""
    if not ratios:
        return "-"
    med = statistics.median(ratios)
    if len(ratios) < 4:
        return f"{med:.2f}x"
    q = statistics.quantiles(ratios, n=4)
    return f"{med:.2f}x (IQR {q[0]:.2f}-{q[2]:.2f})"


def ratio_cells(s: Series, base: Series) -> list[str]:
    """``s`` against ``base``: median of round ratios, best round vs best round, CPU ratio."""
    if s is base:
        return ["1", "1", "1"]
    return [
        fmt_ratio(round_ratios(s, base)),
        f"{s.best / base.best:.2f}x",
        f"{base.cpu_per_request / s.cpu_per_request:.2f}x",
    ]


RATIO_HEADERS = [
    "vs plain: median of rounds",
    "vs plain: best rounds",
    "vs plain: by CPU/req",
]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB: private memory plus a share of shared pages."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return rss_kib(pid)


# -- the plain app without flask-tenants -----------------------------------------------------------


def _tenancy_session_listeners() -> list[tuple[str, Callable[..., Any]]]:
    """flask-tenants' listeners on SQLAlchemy's Session class (they apply to every session in
    the process, so also to the plain app's when both run in one process)."""
    from flask_tenants import isolation, lifecycle, privileges, signals

    return [
        ("after_begin", isolation._on_session_begin),
        ("after_soft_rollback", signals._drop_rolled_back),
        ("after_commit", signals._send_committed),
        ("after_commit", lifecycle._invalidate_after_commit),
        ("after_soft_rollback", lifecycle._forget_after_rollback),
        ("before_flush", privileges._assume_owner),
        ("after_flush_postexec", privileges._drop_owner),
        ("after_soft_rollback", privileges._forget_owner),
    ]


def detach_tenancy(enable: bool = False) -> None:
    """Take flask-tenants' Session listeners off (``enable=True``: put them back)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    for name, fn in _tenancy_session_listeners():
        present = event.contains(Session, name, fn)
        if enable and not present:
            event.listen(Session, name, fn)
        elif not enable and present:
            event.remove(Session, name, fn)


def as_plain(run: Callable[[int], None]) -> Callable[[int], None]:
    """``run`` with flask-tenants' process-wide listeners off while it runs: the plain app is
    measured as it runs in a process that never imported flask-tenants."""

    def plain_run(n: int) -> None:
        detach_tenancy()
        try:
            run(n)
        finally:
            detach_tenancy(enable=True)

    return plain_run
