"""The one RGW stand-in (fast lab only; the fleet runs real radosgw): answers every GET with its name, so a
client sees which node served it; a GET of /echo-headers answers with the request's header lines instead
(what HAProxy forwarded). A GET of /bytes/N?rate=R streams N bytes at R bytes per second (a long
download; the rate makes it last). Every answer names its server in X-Served-By. A HEAD (HAProxy's check,
templates/haproxy.cfg.j2: HEAD, expect 200) gets the headers only.

python -m lab.backend --port 8080 --name node1/rgw1
"""

from __future__ import annotations

import argparse
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(host: str, port: int, name: str) -> None:
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.startswith("/bytes/") and self.command == "GET":
                self.stream()
                return
            answer = body
            if self.path.startswith("/echo-headers"):
                answer = "".join(f"{header}: {value}\n" for header, value in self.headers.items()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("X-Served-By", name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_HEAD = do_GET

        def stream(self) -> None:
            """N bytes, paced at `rate` bytes/s in 16 KiB writes, or as fast as the client reads (rate 0) in
            1 MiB writes: bench/tls.py measures HAProxy's CPU per byte, which a slow stand-in would inflate
            (HAProxy woken for every small read)."""
            url = urllib.parse.urlsplit(self.path)
            size = int(url.path.removeprefix("/bytes/") or 0)
            rate = float(urllib.parse.parse_qs(url.query).get("rate", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("X-Served-By", name)
            self.end_headers()
            chunk = b"x" * (16384 if rate > 0 else 1 << 20)
            started, sent = time.monotonic(), 0
            try:
                while sent < size:
                    piece = chunk[: size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
                    if rate > 0:
                        ahead = sent / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
            except OSError:
                self.close_connection = True  # HAProxy closed it (the client went): nothing to answer

        def log_message(self, format: str, *args: object) -> None:
            pass  # HAProxy checks every 500 ms: keep the lab logs readable

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    serve(args.host, args.port, args.name)


if __name__ == "__main__":
    main()
