"""A loopback TCP proxy that a benchmark can take down and bring back: an outage of one upstream for one client.

    proxy = FaultProxy("127.0.0.1", 19200)   # listens on 127.0.0.1:<proxy.port>, forwards to the upstream
    proxy.start()
    proxy.down()   # open connections are cut (RST), new ones refused (nothing listens on the port)
    proxy.up()     # listening again on the same port; connections go through again
    proxy.stop()

Only the process pointed at the proxy sees the outage; the upstream (the shared Elasticsearch, which others use at
the same time) is never stopped, paused or restarted. While down, the port is closed rather than accepting and
hanging up, so a client sees what it sees while a restarted server is not yet listening: connection refused.

The proxy runs its own event loop in a daemon thread, so it keeps forwarding while the benchmark's own code blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future
from typing import Any

__all__ = ["FaultProxy"]

_CHUNK = 1 << 16


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host``:``upstream_port`` until taken ``down``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = port
        self.connections = 0  # accepted since start (a client that reconnects during a catch-up shows here)
        self.outages = 0

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def down(self) -> None:
        """Cut every open connection and stop listening."""
        self._call(self._down())
        self.outages += 1

    def up(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # SO_REUSEADDR (asyncio's default on POSIX): the same port again right after down(), despite TIME_WAIT.
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted just before down()
            _reset(writer)
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(writer)
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a server that died does, rather than an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
