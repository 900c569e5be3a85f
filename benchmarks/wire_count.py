"""Count what a client sends to PostgreSQL, on the wire.

:class:`WireCounter` is a small TCP proxy between the application and the server. It parses the
frontend side of the PostgreSQL protocol (v3) and counts, independently of any driver or
SQLAlchemy event, the statements the server is asked to run and the round trips that takes:

* a simple ``Query`` message is one round trip and runs each ``;``-separated statement in it;
* in the extended protocol every ``Execute`` runs one statement and every ``Sync`` is one round
  trip (a driver sends Parse/Bind/Describe/Execute/Sync in one go).

Used by ``tests/test_statement_count.py`` and the benchmarks, so the figures cannot be fooled by
the code being measured. Not for throughput runs: the proxy adds latency of its own.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["WireCounter", "WireStats", "split_statements"]

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102


def split_statements(sql: str) -> list[str]:
    """The non-empty ``;``-separated statements of ``sql`` (quotes and comments respected)."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    quote: str | None = None
    while i < n:
        ch = sql[i]
        if quote is not None:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            buf.append(ch)
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == ";":
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
        else:
            buf.append(ch)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append(stmt)
    return out


@dataclass
class WireStats:
    """What went to the server since the last :meth:`WireCounter.reset`."""

    statements: int = 0
    round_trips: int = 0
    by_sql: Counter[str] = field(default_factory=Counter)

    def matching(self, needle: str) -> int:
        """How many executed statements contain ``needle`` (case-insensitive)."""
        low = needle.lower()
        return sum(n for sql, n in self.by_sql.items() if low in sql.lower())


class _Conn:
    """State of one proxied client connection (the frontend message parser)."""

    def __init__(self, counter: WireCounter) -> None:
        self.counter = counter
        self.buf = b""
        self.startup = True
        self.prepared: dict[bytes, str] = {}
        self.portal_sql: dict[bytes, str] = {}

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.startup:
                if len(self.buf) < 8:
                    return
                (length,) = struct.unpack("!I", self.buf[:4])
                if len(self.buf) < length:
                    return
                (code,) = struct.unpack("!I", self.buf[4:8])
                self.buf = self.buf[length:]
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST):
                    self.startup = False
                continue
            if len(self.buf) < 5:
                return
            kind = self.buf[:1]
            (length,) = struct.unpack("!I", self.buf[1:5])
            if len(self.buf) < 1 + length:
                return
            body = self.buf[5 : 1 + length]
            self.buf = self.buf[1 + length :]
            self.message(kind, body)

    def message(self, kind: bytes, body: bytes) -> None:
        c = self.counter
        if kind == b"Q":
            sql = body.rstrip(b"\x00").decode("utf-8", "replace")
            stmts = split_statements(sql)
            with c.lock:
                c.stats.round_trips += 1
                c.stats.statements += len(stmts)
                c.stats.by_sql.update(stmts)
        elif kind == b"P":
            name, rest = body.split(b"\x00", 1)
            sql = rest.split(b"\x00", 1)[0].decode("utf-8", "replace")
            self.prepared[name] = sql
        elif kind == b"B":
            portal, rest = body.split(b"\x00", 1)
            stmt = rest.split(b"\x00", 1)[0]
            self.portal_sql[portal] = self.prepared.get(stmt, "?")
        elif kind == b"E":
            portal = body.split(b"\x00", 1)[0]
            sql = self.portal_sql.get(portal, "?")
            with c.lock:
                c.stats.statements += 1
                c.stats.by_sql[sql.strip()] += 1
        elif kind == b"S":
            with c.lock:
                c.stats.round_trips += 1


class WireCounter:
    """A counting TCP proxy to ``(host, port)``; use as a context manager.

    ``counter.port`` is where clients connect; ``counter.stats`` the counts since ``reset()``.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.lock = threading.Lock()
        self.stats = WireStats()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> WireCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> WireStats:
        """Start counting afresh; returns the counts so far."""
        with self.lock:
            old, self.stats = self.stats, WireStats()
        return old

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        for s in list(self._sockets):
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            parser = _Conn(self)
            threading.Thread(target=self._pump, args=(client, server, parser), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, parser: _Conn | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if parser is not None:
                    parser.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
