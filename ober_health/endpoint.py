"""The health program's state over HTTP on loopback: `GET /state` answers the state file's JSON.

Why: `ober status` must tell the truth when the state file cannot be written (a full or read-only /run, a
wrong owner), instead of calling a running, announcing health program "not running". The endpoint serves the
snapshot the decider published last (an attribute swap, no lock); it decides nothing and writes nothing.
Loopback only (health.toml refuses anything else): it answers anyone who can connect. A Prometheus
`/metrics` can join `/state` here later.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("ober-health")

STATE_PATH = "/state"


class StatusEndpoint:
    """Serves the latest published state from a daemon thread; `publish` hands it a new one."""

    def __init__(self, host: str, port: int) -> None:
        self.snapshot = b"{}\n"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 2.0  # a client that connects and says nothing does not hold a thread for ever

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in (STATE_PATH, "/"):
                    self.send_error(404, f"only {STATE_PATH} here")
                    return
                body = owner.snapshot
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self.server = Server((host, port), Handler)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="status-endpoint", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def publish(self, data: bytes) -> None:
        self.snapshot = data  # one reference swap: the server thread reads either the old or the new bytes


def start_endpoint(listen: str) -> StatusEndpoint | None:
    """The endpoint on `listen` ("host:port"), or None (logged) when it is off or cannot listen: the health
    program runs on without it, only `ober status` then has the state file alone."""
    from ober_health.config import parse_listen

    if not listen:
        return None
    address = parse_listen(listen)
    if address is None:
        log.error("status endpoint %r: not a loopback address and port; not started", listen)
        return None
    try:
        endpoint = StatusEndpoint(*address)
    except OSError as exc:
        log.error("status endpoint %s: cannot listen (%s); `ober status` has the state file only", listen, exc)
        return None
    endpoint.start()
    return endpoint
