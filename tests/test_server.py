"""`concord serve --workers N` shares one listening socket between processes; connections
accepted on it must have Nagle's algorithm off, or every keep-alive answer after the first
waits ~40 ms for the client's delayed ACK (uvicorn issue #3149, fixed in the uvicorn Concord
requires)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn


async def _accepted_nodelay(listener: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Probe, sock=listener)
    port = listener.getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(seen, 5)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_the_shared_socket_gives_connections_tcp_nodelay():
    # The socket uvicorn binds for several workers (concord.server.run passes it to them).
    config = uvicorn.Config("concord.asgi:app", host="127.0.0.1", port=0, workers=2)
    listener = config.bind_socket()
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_accepted_nodelay(listener)) != 0
