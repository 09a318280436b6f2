"""Real server processes for the notification tests: an SMTP server (aiosmtpd, writing a
Maildir) and an HTTP SMS gateway (a small script that logs each request as a JSON line and
answers 400 on /bounce, 503 on /down, 200 otherwise)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GATEWAY = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

LOG = sys.argv[2]

class Gateway(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with open(LOG, "a", encoding="utf-8") as out:
            out.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                                  "body": body}) + "\n")
        code = 400 if self.path.startswith("/bounce") else 503 if self.path.startswith("/down") else 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Gateway).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the server accepts connections (it takes a moment to start), or fail."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


@contextmanager
def _running(args: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@contextmanager
def smtp_server(folder: Path) -> Iterator[int]:
    port = free_port()
    args = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    args += ["-c", "aiosmtpd.handlers.Mailbox", str(folder)]
    with _running(args, port):
        yield port


@contextmanager
def sms_gateway(log: Path) -> Iterator[int]:
    port = free_port()
    script = log.parent / "gateway.py"
    script.write_text(GATEWAY)
    with _running([sys.executable, str(script), str(port), str(log)], port):
        yield port
