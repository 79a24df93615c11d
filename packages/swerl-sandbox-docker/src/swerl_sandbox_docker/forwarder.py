"""The host side of the model socket: a Unix socket that forwards to the proxy on loopback.

Trial containers have no network. Each one gets the run's socket folder bind-mounted read-only
at ``/run/swerl``, and a forwarder inside turns ``127.0.0.1:8002`` into a connection on
``/run/swerl/model.sock``. This module listens on that socket on the host and pipes every
connection to the proxy's TCP port, so the proxy itself stays bound to 127.0.0.1.

It runs in the caller's asyncio loop (the rollout's), one per run: ``await fwd.start()`` before
the first trial, ``await fwd.stop()`` after the last, or ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path
from types import TracebackType

from swerl.errors import UserError

SOCKET_NAME = "model.sock"
#: sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
MAX_SOCKET_PATH = 107
_CHUNK = 65536


class ModelSocketForwarder:
    """Forward connections on ``sock_dir/model.sock`` to ``host:port`` (TCP)."""

    def __init__(self, sock_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.sock_dir = Path(sock_dir)
        self.path = self.sock_dir / SOCKET_NAME
        self.host = host
        self.port = port
        self.connections = 0  # accepted so far (a test and a health view use it)
        self.failed = 0  # connections whose TCP side could not be opened
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        """Listen on the socket (replacing a stale one), readable and writable by any user."""
        if self.running:
            return
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise UserError(
                f"model socket path {self.path} is longer than {MAX_SOCKET_PATH} bytes, the limit "
                "of a Unix socket: use a shorter run.output_dir"
            )
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise UserError(f"{self.path} exists and is not a socket: remove it")
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        # The agent in the container may run as any user; the folder is mounted read-only.
        self.path.chmod(0o666)

    async def stop(self) -> None:
        """Stop listening, end open connections and remove the socket file."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def __aenter__(self) -> ModelSocketForwarder:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                # Nothing listens on the proxy port: close, so the client sees the failure.
                self.failed += 1
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                _close(up_writer)
        finally:
            _close(writer)
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close, so request/response framing passes through untouched."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
