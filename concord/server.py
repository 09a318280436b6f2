"""Serving an ASGI app with uvicorn, one process or several (`concord serve --workers N`).

uvicorn binds the shared listening socket for several workers with `proto` 0; accepted
connections inherit it and asyncio then leaves Nagle's algorithm on, so every keep-alive answer
after the first waits ~40 ms for the client's delayed ACK (uvicorn issue #3149, open as of
2026-11). Measured here: a no-op endpoint went from 2,300 req/s with one process to 190 with
two. The listening socket is re-declared as TCP, which asyncio recognises.

Also `python -m concord.server APP --port P [--workers N]`, used by the benchmark to serve
Concord and its baseline app the same way."""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


class _TcpConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        return as_tcp(sock)


def as_tcp(sock: socket.socket) -> socket.socket:
    """The same listening socket, declared IPPROTO_TCP so accepted ones get TCP_NODELAY."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def run(app: str, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    config = _TcpConfig(app, host=host, port=port, workers=workers, **options)
    server = uvicorn.Server(config=config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        server.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    run(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
