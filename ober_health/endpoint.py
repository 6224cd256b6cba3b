"""The health program's state over HTTP on loopback: `GET /state` answers the state file's JSON, `GET /metrics`
the same state as Prometheus metrics (ober_health.metrics).

Why: `ober status` must tell the truth when the state file cannot be written (a full or read-only /run, a
wrong owner), instead of calling a running, announcing health program "not running". The endpoint serves the
snapshot the decider published last (an attribute swap, no lock); it decides nothing and writes nothing.
Loopback only (health.toml refuses anything else): it answers anyone who can connect. A site's Prometheus
reaches `/metrics` through HAProxy's metrics frontend (`ober_metrics_bind`), behind its source ACL.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ober_health.metrics import CONTENT_TYPE, render
from ober_health.statefile import validate_state

log = logging.getLogger("ober-health")

STATE_PATH = "/state"
METRICS_PATH = "/metrics"

Certificates = Callable[[], Iterable[tuple[str, float]]]


class StatusEndpoint:
    """Serves the latest published state from a daemon thread; `publish` hands it a new one.

    The thread imports the HTTP server and binds: a respawned health program does not wait for that (0.1 s
    of imports) before it reads ExaBGP's RIB and checks. A port it cannot bind is logged; the health
    program runs on, `ober status` then has the state file only."""

    def __init__(self, host: str, port: int, certificates: Certificates = lambda: ()) -> None:
        self.host, self.port = host, port
        self.certificates = certificates  # read at each scrape (a few small files): never stale
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.snapshot = b"{}\n"
        self.thread = threading.Thread(target=self._serve, name="status-endpoint", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def publish(self, data: bytes) -> None:
        self.snapshot = data  # one reference swap: the server thread reads either the old or the new bytes

    def metrics(self) -> bytes:
        """The last published state as Prometheus metrics, rendered now (nothing rendered between scrapes)."""
        data = json.loads(self.snapshot)
        if not data:  # nothing published yet (a moment after start)
            return b""
        return render(validate_state(data, "published state"), self.certificates())

    def _serve(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 2.0  # a client that connects and says nothing does not hold a thread for ever

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == METRICS_PATH:
                    body, kind = owner.metrics(), CONTENT_TYPE
                elif path in (STATE_PATH, "/"):
                    body, kind = owner.snapshot, "application/json"
                else:
                    self.send_error(404, f"only {STATE_PATH} and {METRICS_PATH} here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            daemon_threads = True

        try:
            server = Server((self.host, self.port), Handler)
        except OSError as exc:
            log.error(
                "status endpoint %s: cannot listen (%s); `ober status` has the state file only", self.address, exc
            )
            return
        server.serve_forever(poll_interval=0.5)


def start_endpoint(listen: str, certificates: Certificates = lambda: ()) -> StatusEndpoint | None:
    """The endpoint on `listen` ("host:port"), or None when it is off ("")."""
    from ober_health.config import parse_listen

    if not listen:
        return None
    address = parse_listen(listen)
    if address is None:
        log.error("status endpoint %r: not a loopback address and port; not started", listen)
        return None
    endpoint = StatusEndpoint(*address, certificates=certificates)
    endpoint.start()
    return endpoint
