"""Long downloads through a VIP, one TCP flow each (distinct source ports), for the drain tests: which
node served each, and how many bytes it got before it ended.

    ip netns exec <client> python -m lab.longflow --vip 203.0.113.10 --flows 12 --size 4000000 --rate 500000

Prints one JSON line `{"started": [...]}` once every flow has its response headers (so a test knows which
node carries which flow before it drains one), then one JSON line `{"flows": [...]}` when all have ended:
each flow with its source port, X-Served-By, the bytes received and the error that ended it ("" for a
complete download). Every flow is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass


@dataclass
class Flow:
    index: int
    port: int = 0
    served_by: str = ""
    expected: int = 0
    received: int = 0
    error: str = ""

    @property
    def complete(self) -> bool:
        return not self.error and self.received == self.expected > 0


def download(flow: Flow, vip: str, path: str, headers_in: threading.Barrier, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((vip, 80), timeout=5)
        sock.settimeout(5)
        flow.port = sock.getsockname()[1]
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("closed before the headers")
            head += data
        raw, rest = head.split(b"\r\n\r\n", 1)
        for line in raw.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.lower() == "x-served-by":
                flow.served_by = value.strip()
            elif key.lower() == "content-length":
                flow.expected = int(value)
        flow.received = len(rest)
    except (OSError, ValueError) as exc:
        flow.error = f"before the body: {exc!r}"
    finally:
        with contextlib.suppress(threading.BrokenBarrierError):
            headers_in.wait(timeout=10)
    try:
        while sock is not None and not flow.error and flow.received < flow.expected:
            if time.monotonic() > deadline:
                flow.error = f"not complete after {timeout:g}s"
                break
            data = sock.recv(65536)
            if not data:
                flow.error = "closed early"
                break
            flow.received += len(data)
    except OSError as exc:
        flow.error = repr(exc)
    finally:
        if sock is not None:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vip", required=True)
    parser.add_argument("--flows", type=int, default=12)
    parser.add_argument("--size", type=int, default=4_000_000, help="bytes per download")
    parser.add_argument("--rate", type=int, default=500_000, help="bytes/s per download (the backend paces)")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound of each download in seconds")
    args = parser.parse_args()
    flows = [Flow(i) for i in range(args.flows)]
    barrier = threading.Barrier(args.flows + 1)
    path = f"/bytes/{args.size}?rate={args.rate}"
    threads = [
        threading.Thread(target=download, args=(flow, args.vip, path, barrier, args.timeout), daemon=True)
        for flow in flows
    ]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=15)
    print(json.dumps({"started": [asdict(flow) for flow in flows]}), flush=True)
    for thread in threads:
        thread.join(timeout=args.timeout + 10)
    print(json.dumps({"flows": [asdict(flow) for flow in flows]}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
