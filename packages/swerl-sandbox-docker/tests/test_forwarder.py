"""The host forwarder: Unix socket -> TCP on loopback, with real sockets on both sides."""

from __future__ import annotations

import asyncio
import os
import socket
import stat

import pytest

from swerl.errors import UserError
from swerl_sandbox_docker.forwarder import ModelSocketForwarder


async def _upstream(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _echo_upper(reader, writer):
    """Answers each request line in upper case, then streams three chunks and closes."""
    line = await reader.readline()
    writer.write(line.upper())
    for i in range(3):
        await asyncio.sleep(0.05)
        writer.write(f"chunk{i}\n".encode())
        await writer.drain()
    writer.close()


async def _talk(path, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    return data


def test_connections_on_the_socket_reach_the_tcp_port_both_ways(tmp_path):
    async def main():
        server, port = await _upstream(_echo_upper)
        async with server, ModelSocketForwarder(tmp_path / "sock", port) as fwd:
            results = await asyncio.gather(
                *(_talk(fwd.path, f"hi {i}\n".encode()) for i in range(5))
            )
            assert fwd.connections == 5
        return results, fwd

    results, fwd = asyncio.run(main())
    for i, data in enumerate(results):
        assert data == f"HI {i}\nchunk0\nchunk1\nchunk2\n".encode()
    assert not fwd.path.exists()  # stop removed the socket file


def test_the_socket_is_open_to_any_user_of_the_container(tmp_path):
    async def main():
        fwd = ModelSocketForwarder(tmp_path, 9)
        await fwd.start()
        try:
            mode = fwd.path.stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o666
        finally:
            await fwd.stop()

    asyncio.run(main())


def test_a_dead_proxy_closes_the_connection_and_is_counted(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        async with ModelSocketForwarder(tmp_path, port) as fwd:
            assert await _talk(fwd.path, b"GET / HTTP/1.0\r\n\r\n") == b""
            return fwd.failed

    assert asyncio.run(main()) == 1


def test_a_stale_socket_is_replaced_and_a_stray_file_refused(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "model.sock"))
    stale.close()  # the file stays, as after a crash

    async def main():
        server, port = await _upstream(_echo_upper)
        async with server, ModelSocketForwarder(tmp_path, port) as fwd:
            return await _talk(fwd.path, b"x\n")

    assert asyncio.run(main()).startswith(b"X\n")
    (tmp_path / "model.sock").write_text("not a socket")
    with pytest.raises(UserError, match="is not a socket"):
        asyncio.run(ModelSocketForwarder(tmp_path, 9).start())


def test_a_socket_path_too_long_for_unix_sockets_is_a_clear_error(tmp_path):
    deep = tmp_path / ("d" * 120)
    with pytest.raises(UserError, match=r"longer than 107 bytes.*run\.output_dir"):
        asyncio.run(ModelSocketForwarder(deep, 9).start())
    assert not deep.exists()


def test_stop_ends_open_connections(tmp_path):
    async def hold(reader, writer):
        await reader.read()  # never answers; returns when the forwarder hangs up
        writer.close()

    async def main():
        server, port = await _upstream(hold)
        async with server:
            fwd = ModelSocketForwarder(tmp_path, port)
            await fwd.start()
            reader, writer = await asyncio.open_unix_connection(str(fwd.path))
            writer.write(b"waiting")
            await writer.drain()
            await asyncio.sleep(0.1)
            await asyncio.wait_for(fwd.stop(), timeout=5)
            data = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            return data, fwd.running

    assert asyncio.run(main()) == (b"", False)
    assert os.listdir(tmp_path) == []
