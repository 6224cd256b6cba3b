"""Count refused connections to HAProxy while something happens to it (a reload must refuse none).

    ip netns exec NODE python -m lab.connprobe --tcp 127.0.0.1:8404 --unix /path/haproxy.sock --seconds 120

Connects (and closes at once) to each target every millisecond until its stdin closes or `--seconds` pass,
then prints one JSON object: per target, the attempts and the errors by name (`ConnectionRefusedError`...).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time


def attempt(target: str) -> str:
    """'' when the connection was accepted, else the error's class name."""
    try:
        if target.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(target)
        else:
            host, _, port = target.rpartition(":")
            socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError as exc:
        return type(exc).__name__
    return ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", action="append", default=[])
    parser.add_argument("--unix", action="append", default=[])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    targets = [*args.tcp, *args.unix]
    counts: dict[str, dict[str, int]] = {target: {"attempts": 0} for target in targets}
    closed = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    deadline = time.monotonic() + args.seconds
    while not closed.is_set() and time.monotonic() < deadline:
        for target in targets:
            error = attempt(target)
            counts[target]["attempts"] += 1
            if error:
                counts[target][error] = counts[target].get(error, 0) + 1
        time.sleep(0.001)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
