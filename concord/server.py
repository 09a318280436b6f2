"""Serving an ASGI app with uvicorn, one process or several (`concord serve --workers N`).

With several workers uvicorn binds one listening socket and the processes share it. Before
uvicorn 0.55 that socket was declared with `proto` 0, so accepted connections kept Nagle's
algorithm on and every keep-alive answer after the first waited ~40 ms for the client's delayed
ACK (uvicorn issue #3149; measured here, a no-op endpoint went from 2,300 req/s with one
process to 190 with two). Concord requires a uvicorn that declares it as TCP
(tests/test_server.py checks the accepted connections).

Also `python -m concord.server APP --port P [--workers N]`, used by the benchmark to serve
Concord and its baseline app the same way."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def server_config(
    app: Any, *, host: str, port: int, workers: int = 1, **options: Any
) -> uvicorn.Config:
    # uvicorn would otherwise believe X-Forwarded-For from any local peer (its default trusts
    # 127.0.0.1), so anyone on the machine could name any address and escape the sign-in
    # throttle: the app believes it only from CONCORD_TRUSTED_PROXIES (create_app).
    options["proxy_headers"] = False
    return uvicorn.Config(app, host=host, port=port, workers=workers, **options)


def run(app: str, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    config = server_config(app, host=host, port=port, workers=workers, **options)
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
