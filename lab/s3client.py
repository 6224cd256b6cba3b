"""An S3 client of the lab's site (boto3, SigV4, TLS verified), run where a site's clients are: the router side.

    python -m lab.s3client roundtrip --endpoint https://203.0.113.10 --ca lab-ca.crt --bucket b1 --size 64MiB
    python -m lab.s3client traffic --endpoint https://s3.lab.example --ca lab-ca.crt --bucket b1 --duration 8

Each command prints one JSON document (the last line of stdout): what a user would check (digests of what
was sent and what came back, keys per listing page, error codes) and how long it took. Credentials come
from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as every SDK reads them; retries are the SDK's `standard`
mode (3 attempts) unless told otherwise.

Object bodies are a pattern of 16-byte cells, each holding a per-run salt and its own number
(`a1b2c3000000001|` is bytes 16-31): a byte from the wrong place, or from an older object under the same
key, changes the digest, and `first_difference` says where. Keys avoid `.` (RGW Tentacle's POSIX driver fails
UploadPart for dotted keys) and clients never call ListParts (it crashes that build).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

MIB = 1 << 20
REGION = "us-east-1"
NEVER = 1 << 40  # a multipart threshold no object reaches: one PUT, one GET


def pattern(size: int, salt: str) -> bytes:
    """`size` bytes of 16-byte cells `<salt:6><cell number:09d>|` (the last cell cut to fit).

    Built column by column with strided slice assignments, the numbered part once per size (formatting
    four million cells one by one takes seconds; a new salt on a cached numbering takes a fraction)."""
    if len(salt) != 6:
        raise ValueError("salt must be 6 characters")
    cells = -(-size // 16)
    buffer = bytearray(_numbered(cells))
    for column, char in enumerate(salt.encode()):
        buffer[column::16] = bytes([char]) * cells
    return bytes(buffer[:size])


@functools.lru_cache(maxsize=4)
def _numbered(cells: int) -> bytes:
    """`cells` 16-byte cells with their number in columns 6-14 and `|` in column 15 (salt columns empty)."""
    buffer = bytearray(cells * 16)
    for place in range(9):  # the cell number's digit worth 10**place sits in column 14 - place
        buffer[14 - place :: 16] = _digit_column(cells, place)
    buffer[15::16] = b"|" * cells
    return bytes(buffer)


def _digit_column(cells: int, place: int) -> bytes:
    """The digit worth 10**place of 0, 1, ..., cells-1, as ASCII."""
    unit = 10**place
    if unit * 10 <= cells:
        cycle = b"".join(bytes([48 + value]) * unit for value in range(10))
        repeats, rest = divmod(cells, len(cycle))
        return cycle * repeats + cycle[:rest]
    column = bytearray()
    value = 0
    while len(column) < cells:
        column += bytes([48 + value % 10]) * min(unit, cells - len(column))
        value += 1
    return bytes(column)


def first_difference(expected: bytes, got: bytes) -> int | None:
    """Offset of the first byte that differs (or where one is shorter); None when equal."""
    if expected == got:
        return None
    for offset in range(0, min(len(expected), len(got)), 4096):
        if expected[offset : offset + 4096] != got[offset : offset + 4096]:
            return offset + next(
                i for i, (a, b) in enumerate(zip(expected[offset:], got[offset:], strict=False)) if a != b
            )
    return min(len(expected), len(got))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Recorder:
    """Counts what the SDK retried: failed attempts seen by botocore's retry handler and s3transfer's own
    retries of interrupted downloads (it re-reads a part whose stream broke, outside botocore's retries)."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.transfer_retries: Counter[str] = Counter()
        self.lock = threading.Lock()

    def on_needs_retry(self, caught_exception: BaseException | None = None, response: Any = None, **_: Any) -> None:
        """Registered first on `needs-retry.s3`: records, returns None so the retry handler still decides."""
        reason = None
        if caught_exception is not None:
            reason = type(caught_exception).__name__
        elif response is not None and response[0].status_code >= 500:
            reason = f"HTTP {response[0].status_code}"
        if reason:
            with self.lock:
                self.attempts[reason] += 1

    def handler(self) -> logging.Handler:
        recorder = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if str(record.msg).startswith("Retrying exception caught"):
                    exception = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
                    with recorder.lock:
                        recorder.transfer_retries[type(exception).__name__] += 1

        return Handler(level=logging.DEBUG)


def make_client(
    endpoint: str,
    ca: str,
    *,
    secret: str | None = None,
    mode: str = "standard",
    pool: int = 10,
    recorder: Recorder | None = None,
) -> Any:
    """A boto3 S3 client for `endpoint`, verifying TLS against `ca`, path-style addressing (the VIP's name or
    address is the host; buckets are in the path)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise SystemExit("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    client = session.client(
        "s3",
        endpoint_url=endpoint,
        verify=ca,
        region_name=REGION,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=secret if secret is not None else credentials.secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",  # also for presigned URLs (boto3 presigns with SigV2 unless told)
            retries={"mode": mode, "max_attempts": 3},
            max_pool_connections=pool,
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    if recorder is not None:
        client.meta.events.register_first("needs-retry.s3", recorder.on_needs_retry)
    return client


def transfer_config(multipart: bool, chunk: int, concurrency: int) -> Any:
    from boto3.s3.transfer import TransferConfig

    threshold = chunk if multipart else NEVER
    return TransferConfig(
        multipart_threshold=threshold, multipart_chunksize=chunk, max_concurrency=concurrency, use_threads=True
    )


def ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=bucket)


def roundtrip(
    client: Any, bucket: str, key: str, size: int, multipart: bool, chunk: int, concurrency: int, ranges: bool
) -> dict[str, Any]:
    """Upload `size` bytes, download them again, compare; with `ranges`, also read single byte ranges."""
    salt = secrets.token_hex(3)
    data = pattern(size, salt)
    config = transfer_config(multipart, chunk, concurrency)
    ensure_bucket(client, bucket)
    started = time.monotonic()
    client.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
    put_seconds = time.monotonic() - started
    head = client.head_object(Bucket=bucket, Key=key)
    sink = io.BytesIO()
    started = time.monotonic()
    client.download_fileobj(bucket, key, sink, Config=config)
    get_seconds = time.monotonic() - started
    got = sink.getvalue()
    result: dict[str, Any] = {
        "size": size,
        "salt": salt,
        "etag": head["ETag"].strip('"'),
        "content_length": head["ContentLength"],
        "sha_sent": sha256(data),
        "sha_got": sha256(got),
        "first_difference": first_difference(data, got),
        "put_seconds": put_seconds,
        "get_seconds": get_seconds,
    }
    if ranges:
        checks = []
        for start, end in _ranges(size, chunk):
            part = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
            body = part["Body"].read()
            checks.append(
                {
                    "range": f"{start}-{end}",
                    "status": part["ResponseMetadata"]["HTTPStatusCode"],
                    "content_range": part.get("ContentRange"),
                    "ok": body == data[start : end + 1],
                }
            )
        result["ranges"] = checks
    return result


def _ranges(size: int, chunk: int) -> list[tuple[int, int]]:
    """The head, an unaligned piece in the middle, one across a part boundary, the tail."""
    middle = size // 2 + 5
    boundary = min(chunk, size - 1)
    return [(0, 99), (16, 115), (middle, middle + 4096), (max(0, boundary - 50), min(size - 1, boundary + 50)),
            (size - 100, size - 1)]  # fmt: skip


def listing(client: Any, bucket: str, count: int, page: int) -> dict[str, Any]:
    """Put `count` small objects under a fresh prefix, then list them `page` keys at a time (v2 and v1)."""
    prefix = f"list-{secrets.token_hex(3)}/"
    ensure_bucket(client, bucket)
    keys = [f"{prefix}obj-{i:04d}" for i in range(count)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    v2 = [
        [item["Key"] for item in response.get("Contents", [])]
        for response in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page}
        )
    ]
    v1 = [
        [item["Key"] for item in response.get("Contents", [])]
        for response in client.get_paginator("list_objects").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page}
        )
    ]
    return {"keys": keys, "pages_v2": v2, "pages_v1": v1}


def deletion(client: Any, bucket: str) -> dict[str, Any]:
    """Delete one object alone and three in one batch request; what each one reads afterwards."""
    prefix = f"del-{secrets.token_hex(3)}/"
    ensure_bucket(client, bucket)
    keys = [f"{prefix}obj-{i}" for i in range(4)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.delete_object(Bucket=bucket, Key=keys[0])
    batch = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[1:]]})
    after = {}
    for key in keys:
        try:
            client.head_object(Bucket=bucket, Key=key)
            after[key] = 200
        except client.exceptions.ClientError as error:
            after[key] = int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    left = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0)
    return {"deleted_in_batch": sorted(d["Key"] for d in batch.get("Deleted", [])), "head_after": after, "left": left}


def one_character_off(secret: str) -> str:
    """A secret that differs from `secret` in its last character: a wrong secret whatever the right one ends with."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def signature(endpoint: str, ca: str, bucket: str) -> dict[str, Any]:
    """The same GET signed with the right secret and with a wrong one: what the server answers to each."""
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    good = make_client(endpoint, ca)
    ensure_bucket(good, bucket)
    good.put_object(Bucket=bucket, Key="signed", Body=b"signed")
    answers: dict[str, Any] = {"right": good.get_object(Bucket=bucket, Key="signed")["Body"].read().decode()}
    bad = make_client(endpoint, ca, secret=one_character_off(secret))
    try:
        bad.get_object(Bucket=bucket, Key="signed")
        answers["wrong"] = {"status": 200}
    except bad.exceptions.ClientError as error:
        answers["wrong"] = {
            "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": error.response["Error"]["Code"],
        }
    return answers


def presign(client: Any, bucket: str, key: str, method: str, expires: int) -> dict[str, Any]:
    """A presigned URL for `method` (get_object / put_object); computed locally, no request is sent."""
    operation = {"get": "get_object", "put": "put_object"}[method]
    url = client.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)
    return {"url": url}


def traffic(
    client: Any,
    recorder: Recorder,
    bucket: str,
    duration: float,
    size: int,
    chunk: int,
    concurrency: int,
    multipart: bool = True,
) -> dict[str, Any]:
    """Keep an upload and a download in flight for `duration` seconds: multipart and parallel ranged GETs,
    or (`multipart=False`, for RGW Reef) one PUT and one GET at a time.

    Every operation is recorded with its outcome (ok, or the exception the SDK gave up with) and the bytes
    are checked: each download against the seeded object, each finished upload by reading it back after
    the run. What the SDK retried underneath is in `recorder`.
    """
    ensure_bucket(client, bucket)
    config = transfer_config(multipart, chunk, concurrency)
    salt = secrets.token_hex(3)
    seed = pattern(size, salt)
    client.upload_fileobj(io.BytesIO(seed), bucket, "seed-download", Config=config)
    ops: list[dict[str, Any]] = []
    uploaded: dict[str, bytes] = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    deadline = t0 + duration

    def record(kind: str, key: str, started: float, error: BaseException | None, ok: bool | None) -> None:
        with lock:
            ops.append(
                {
                    "op": kind,
                    "key": key,
                    "start": round(started - t0, 3),
                    "seconds": round(time.monotonic() - started, 3),
                    "error": None if error is None else f"{type(error).__name__}: {error}"[:300],
                    "data_ok": ok,
                }
            )

    def uploader() -> None:
        number = 0
        while time.monotonic() < deadline:
            key = f"inflight-up-{number:03d}"
            data = pattern(size, secrets.token_hex(3))
            started = time.monotonic()
            try:
                client.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
            except Exception as error:
                record("upload", key, started, error, None)
            else:
                uploaded[key] = data
                record("upload", key, started, None, None)
            number += 1

    def downloader() -> None:
        while time.monotonic() < deadline:
            sink = io.BytesIO()
            started = time.monotonic()
            try:
                client.download_fileobj(bucket, "seed-download", sink, Config=config)
            except Exception as error:
                record("download", "seed-download", started, error, None)
            else:
                record("download", "seed-download", started, None, sink.getvalue() == seed)

    threads = [threading.Thread(target=uploader), threading.Thread(target=downloader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # the uploads that finished: read back after the run, so their bytes are checked too
    for op in ops:
        if op["op"] == "upload" and op["error"] is None:
            sink = io.BytesIO()
            client.download_fileobj(bucket, op["key"], sink, Config=config)
            op["data_ok"] = sink.getvalue() == uploaded[op["key"]]
    return {
        "size": size,
        "duration": duration,
        "ops": ops,
        "failed_attempts": dict(recorder.attempts),
        "transfer_retries": dict(recorder.transfer_retries),
    }


def _size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": MIB, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.s3client", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("roundtrip", "listing", "deletion", "signature", "presign", "traffic"))
    parser.add_argument("--endpoint", required=True, help="https://VIP or https://name")
    parser.add_argument("--ca", required=True, help="CA certificate the endpoint's certificate must chain to")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", default="object")
    parser.add_argument("--size", type=_size, default=64 * MIB, help="bytes, or with KiB/MiB/GiB")
    parser.add_argument(
        "--multipart", action="store_true", help="multipart upload and ranged parallel download (roundtrip, traffic)"
    )
    parser.add_argument("--chunk", type=_size, default=8 * MIB, help="part size (default 8MiB)")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel parts (default 8)")
    parser.add_argument("--ranges", action="store_true", help="roundtrip: also read byte ranges")
    parser.add_argument("--count", type=int, default=25, help="listing: objects")
    parser.add_argument("--page", type=int, default=10, help="listing: keys per page")
    parser.add_argument("--method", choices=("get", "put"), default="get", help="presign: operation")
    parser.add_argument("--expires", type=int, default=300, help="presign: seconds")
    parser.add_argument("--duration", type=float, default=8.0, help="traffic: seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    recorder = Recorder()
    logging.getLogger("s3transfer").setLevel(logging.DEBUG)
    logging.getLogger("s3transfer").addHandler(recorder.handler())
    client = make_client(args.endpoint, args.ca, recorder=recorder, pool=max(10, args.concurrency + 2))
    commands: dict[str, Callable[[], dict[str, Any]]] = {
        "roundtrip": lambda: roundtrip(
            client, args.bucket, args.key, args.size, args.multipart, args.chunk, args.concurrency, args.ranges
        ),
        "listing": lambda: listing(client, args.bucket, args.count, args.page),
        "deletion": lambda: deletion(client, args.bucket),
        "signature": lambda: signature(args.endpoint, args.ca, args.bucket),
        "presign": lambda: presign(client, args.bucket, args.key, args.method, args.expires),
        "traffic": lambda: traffic(
            client, recorder, args.bucket, args.duration, args.size, args.chunk, args.concurrency, args.multipart
        ),
    }
    result = commands[args.command]()
    result.setdefault("failed_attempts", dict(recorder.attempts))
    result.setdefault("transfer_retries", dict(recorder.transfer_retries))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
