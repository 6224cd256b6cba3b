"""Keep-alive clients through a VIP, driven round by round: what a reload must not break.

    client = KeepAliveClient(router_ns, "203.0.113.10", connections=6)
    client.round()        # every connection makes one request (opening it the first time)
    ...                   # reload HAProxy
    client.round()        # {"failed": n, "closes": n, "errors": [...]}: the requests on the kept connections
    client.close()

The client is a child process in `netns` holding `connections` HTTP/1.1 connections open between rounds;
a connection that fails is closed and reopened at the next round, as a client retrying would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from lab.procs import netns_exec

KEEPALIVE = r"""
import http.client, json, sys
host, count = sys.argv[1], int(sys.argv[2])
conns = [http.client.HTTPConnection(host, 80, timeout=5) for _ in range(count)]
def round_():
    failed, errors, closes = 0, [], 0
    for conn in conns:
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            closes += response.getheader("Connection", "").lower() == "close"
        except Exception as error:
            failed += 1
            errors.append(f"{type(error).__name__}: {error}")
            conn.close()  # the next round opens a new connection, as a client retrying would
    return {"failed": failed, "closes": closes, "errors": errors}
for line in sys.stdin:
    print(json.dumps(round_()), flush=True)
"""


class KeepAliveClient:
    """`connections` keep-alive connections to `host` port 80 from `netns`, one request each per `round`."""

    def __init__(self, netns: str, host: str, connections: int = 6) -> None:
        self.proc = subprocess.Popen(
            netns_exec(netns, sys.executable, "-c", KEEPALIVE, host, str(connections)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def round(self) -> dict[str, Any]:
        """One request on each connection: {"failed", "closes" (answers with Connection: close), "errors"}."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"keep-alive client exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
