"""TLS per HAProxy CPU-second, as fractions of what `openssl speed` does on the same machine.

    .venv/bin/python -m bench.tls [--runs 5] [--variant 'name=tune.x 1;tune.y 2' ...]     # root (namespaces)

HAProxy is lab/frontend.py's: the distribution's binary with templates/haproxy.cfg.j2 rendered through
ober_deploy (a node's config, its files moved into a work directory), in a node namespace behind a router
namespace, RGW's stand-in lab/backend.py on the node streaming large objects from memory (1 MiB writes).
Clients run in the router namespace: h2load (Debian's nghttp2-client) fetches 64 MiB objects over
HTTP/1.1 and over h2 on one connection each, TLS 1.3 with TLS_AES_256_GCM_SHA384; `openssl s_time -new`
makes full handshakes (TLS 1.3, X25519 + the certificate's signature), one frontend with an ECDSA P-256
certificate, one with RSA 2048.

The machine is shared (2 cores, other work running), so nothing is divided by wall time: HAProxy's work is
the utime + stime of its worker (/proc/<pid>/stat) over a transfer, and the ceilings are `openssl speed`'s
own figures per CPU-second (it divides by user CPU time): `-evp aes-256-gcm` on 16 KiB blocks, ECDSA P-256
and RSA 2048 signs. Every run measures the ceilings again beside the transfers, so a fraction compares two
things measured under the same load. Bytes are what h2load counts (bodies and headers), 1 MB = 10^6 bytes.

`--variant` renders the same config with global lines set or added (a line replaces the template's line
of the same keyword), served by a reload between measurements so that variants alternate run by run: how
each tuning setting was tried before templates/haproxy.cfg.j2 kept it or not (bench/README.md).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.figures import Figure, markdown, percentile
from lab.frontend import Frontend, inventory, render_config
from lab.procs import run, wait_for
from lab.tlsca import LabCa
from ober_health.paths import PATHS

OBJECT = 64 * 1024 * 1024  # a large S3 object's part (RGW's default stripe is 4 MiB; multipart parts are larger)
OBJECTS = 6  # per transfer, on one connection
HANDSHAKE_SECONDS = 3
CIPHERSUITE = "TLS_AES_256_GCM_SHA384"  # what `openssl speed -evp aes-256-gcm` is the ceiling of
GOAL_AES = 0.4
GOAL_H2 = 1.05


@dataclass
class Samples:
    """One variant's figures, one value per run."""

    h1: list[float] = field(default_factory=list)  # MB per HAProxy CPU-second
    h2: list[float] = field(default_factory=list)
    h1_kernel: list[float] = field(default_factory=list)  # the share of HAProxy's CPU in the kernel (stime), h1
    ecdsa: list[float] = field(default_factory=list)  # handshakes per HAProxy CPU-second
    rsa: list[float] = field(default_factory=list)


@dataclass
class Ceilings:
    """`openssl speed` per CPU-second, one value per run."""

    aes: list[float] = field(default_factory=list)  # MB/s, AES-256-GCM on 16 KiB blocks
    ecdsa: list[float] = field(default_factory=list)  # P-256 signs/s
    rsa: list[float] = field(default_factory=list)  # RSA 2048 signs/s


def cpu_times(pid: int) -> tuple[float, float]:
    """utime and stime of `pid` (every thread of it), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / 100.0, int(fields[12]) / 100.0  # the 14th, 15th fields; USER_HZ is 100 on Linux


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (every thread of it), in seconds."""
    return sum(cpu_times(pid))


def openssl_speed(*argv: str) -> str:
    return run("openssl", "speed", "-seconds", "2", *argv, timeout=60).stdout


def ceilings_once(into: Ceilings) -> None:
    aes = re.search(r"^AES-256-GCM\s+([\d.]+)k\s*$", openssl_speed("-bytes", "16384", "-evp", "aes-256-gcm"), re.M)
    ecdsa = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", openssl_speed("ecdsap256"))
    rsa = re.search(r"rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)", openssl_speed("rsa2048"))
    if not (aes and ecdsa and rsa):
        raise RuntimeError("openssl speed printed no figure this benchmark can read")
    into.aes.append(float(aes[1]) * 1000 / 1e6)
    into.ecdsa.append(float(ecdsa[1]))
    into.rsa.append(float(rsa[1]))


@dataclass(frozen=True)
class Variant:
    """A config to measure: global `lines` set on top of the rendered template, and the HAProxy that serves
    it: the machine's own (root None) or the one in a Debian root filesystem (another release's package)."""

    lines: tuple[str, ...] = ()
    root: Path | None = None


# HAProxy inside a read-only Debian root: an overlay of it (HAProxy writes nothing there, but its chroot
# and log socket are mounted in), the work directory bound at its own path, then IN_MOUNT_NAMESPACE's steps
IN_ROOT = (
    'mount -t overlay overlay -o lowerdir="$2",upperdir="$3/upper",workdir="$3/work" "$3/merged" && '
    'mkdir -p "$3/merged$4" && mount --bind "$4" "$3/merged$4" && '
    'mount -t tmpfs tmpfs "$3/merged/var/lib/haproxy" && mkdir "$3/merged/var/lib/haproxy/dev" && '
    'touch "$3/merged/var/lib/haproxy/dev/log" && mount --bind "$0" "$3/merged/var/lib/haproxy/dev/log" && '
    'exec chroot "$3/merged" haproxy -W -db -f "$1"'
)


class TunedFrontend(Frontend):
    """lab/frontend.py's HAProxy whose rendered config gets `lines` in its global section (a variant), the
    machine's HAProxy or the one of a Debian root filesystem (`root`)."""

    def __init__(self, workdir: Path, prefix: str, data: dict[str, Any], root: Path | None = None) -> None:
        super().__init__(workdir, prefix, data)
        self.lines: tuple[str, ...] = ()
        self.root = root

    def haproxy(self, *argv: str) -> list[str]:
        return ["chroot", str(self.root), "haproxy", *argv] if self.root else ["haproxy", *argv]

    def version(self) -> str:
        return subprocess.run(self.haproxy("-v"), capture_output=True, text=True, check=False).stdout.splitlines()[0]

    def render(self) -> str:
        if self.root is None:
            return tuned(super().render(), self.lines)
        version = subprocess.run(self.haproxy("-v"), capture_output=True, text=True, check=False).stdout
        return tuned(render_config(self.settings, self.workdir, self.workdir, version), self.lines)

    def start_haproxy(self) -> None:
        if self.root is None:
            super().start_haproxy()
            return
        overlay = self.workdir / "overlay"
        for part in ("upper", "work", "merged"):
            (overlay / part).mkdir(parents=True, exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_ROOT, str(self.log_socket)]
        argv += [str(self.config), str(self.root), str(overlay), str(self.workdir)]
        self.supervisor.start("haproxy", argv, netns=self.node)

    def use(self, lines: tuple[str, ...]) -> None:
        """Serve the config with `lines` (a reload; returns once the old worker has gone)."""
        if lines == self.lines:
            return
        self.lines = lines
        self.config.write_text(self.render())
        self.reload()
        wait_for(lambda: len(self.workers()) == 1, timeout=30, what="the old HAProxy worker to leave")

    def worker(self) -> int:
        (pid,) = self.workers()
        return pid

    def stat(self, field_name: str) -> int:
        """A counter of HAProxy's `show info` (from the admin socket)."""
        socket_path = str(self.workdir / Path(PATHS.admin_socket).name)
        text = subprocess.run(
            ["socat", "-", f"UNIX-CONNECT:{socket_path}"], input="show info\n", capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout  # fmt: skip
        match = re.search(rf"^{field_name}: (\d+)$", text, re.M)
        if not match:
            raise RuntimeError(f"HAProxy's show info has no {field_name}")
        return int(match[1])


def tuned(config: str, lines: tuple[str, ...]) -> str:
    """`config` with each of `lines` replacing the global line of the same keyword, or added to global."""
    head, rest = config.split("\ndefaults\n", 1)
    rows = head.rstrip("\n").split("\n")
    for line in lines:
        keyword = line.split()[0]
        found = [index for index, row in enumerate(rows) if row.startswith(f"    {keyword} ")]
        for index in found:
            rows[index] = f"    {line}"
        if not found:
            rows.append(f"    {line}")
    return "\n".join(rows) + f"\n\ndefaults\n{rest}"


def timed(frontend: TunedFrontend, action: Callable[[], str]) -> tuple[str, float]:
    """What `action` printed and the HAProxy worker's CPU-seconds it cost."""
    pid = frontend.worker()
    before = cpu_seconds(pid)
    out = action()
    return out, cpu_seconds(pid) - before


def transfer(frontend: TunedFrontend, h2: bool, kernel: list[float] | None = None) -> float:
    """MB per HAProxy CPU-second for OBJECTS large objects, one after the other on one connection (the
    share of that CPU spent in the kernel appended to `kernel`)."""
    url = f"https://{frontend.vip}/bytes/{OBJECT}"
    argv = ["h2load", "-n", str(OBJECTS), "-c", "1", "-m", "1", f"--tls13-ciphers={CIPHERSUITE}"]
    if not h2:
        argv.append("--h1")

    def fetch() -> str:
        result = frontend.client(*argv, url, timeout=300)
        if f"{OBJECTS} succeeded" not in result.stdout:
            raise RuntimeError(f"h2load failed: {result.stdout[-800:]} {result.stderr[-400:]}")
        return result.stdout

    system = cpu_times(frontend.worker())[1]
    out, cpu = timed(frontend, fetch)
    if kernel is not None:
        kernel.append((cpu_times(frontend.worker())[1] - system) / cpu)
    match = re.search(r"^traffic: \S+ \((\d+)\) total", out, re.M)
    if not match:
        raise RuntimeError(f"h2load printed no traffic line: {out[-400:]}")
    return int(match[1]) / 1e6 / cpu


def handshakes(frontend: TunedFrontend) -> float:
    """Full handshakes (no resumption) per HAProxy CPU-second, counted by HAProxy (CumSslConns)."""
    before = frontend.stat("CumSslConns")
    argv = ("openssl", "s_time", "-connect", f"{frontend.vip}:443", "-new", "-time", str(HANDSHAKE_SECONDS))
    _, cpu = timed(frontend, lambda: frontend.client(*argv, timeout=60).stdout)
    return (frontend.stat("CumSslConns") - before) / cpu


def measure(runs: int, variants: dict[str, Variant], workdir: Path) -> tuple[dict[str, Samples], Ceilings]:
    """Every variant once per run (alternated: the same load for each), the ceilings once per run."""
    ca = LabCa(workdir / "ca")
    samples = {name: Samples() for name in variants}
    ceilings = Ceilings()
    bundles = {kind: ca.server_bundle(f"s3-{kind}.lab.example", ["203.0.113.10"], kind) for kind in ("ecdsa", "rsa")}
    prefix = f"bt{int(time.time()) % 10000}"
    roots = list(dict.fromkeys(variant.root for variant in variants.values()))
    frontends = {
        (root, kind): TunedFrontend(
            workdir / f"{kind}{index}",
            f"{prefix}{index}{kind[0]}",
            inventory(ober_tls_certificates=[str(bundle)]),
            root,
        )
        for index, root in enumerate(roots)
        for kind, bundle in bundles.items()
    }
    try:
        for frontend in frontends.values():
            frontend.up()
        for root in roots:
            print(f"HAProxy {'in ' + str(root) if root else 'of this machine'}: {frontends[root, 'ecdsa'].version()}")
        for index in range(runs):
            ceilings_once(ceilings)
            for name, variant in variants.items():
                ecdsa, rsa = frontends[variant.root, "ecdsa"], frontends[variant.root, "rsa"]
                ecdsa.use(variant.lines)
                samples[name].h1.append(transfer(ecdsa, h2=False, kernel=samples[name].h1_kernel))
                samples[name].h2.append(transfer(ecdsa, h2=True))
                samples[name].ecdsa.append(handshakes(ecdsa))
                rsa.use(variant.lines)
                samples[name].rsa.append(handshakes(rsa))
                print(f"run {index + 1}/{runs} {name}: " + line_of(samples[name], ceilings, last=True), flush=True)
    finally:
        for frontend in frontends.values():
            frontend.down()
    return samples, ceilings


def line_of(s: Samples, c: Ceilings, last: bool = False) -> str:
    pick: Callable[[list[float]], float] = (lambda v: v[-1]) if last else statistics.median
    return (
        f"h1 {pick(s.h1):7.0f} MB/cpu-s ({pick(s.h1) / pick(c.aes):.2f} of AES-GCM)  "
        f"h2 {pick(s.h2):7.0f} MB/cpu-s (h2/h1 CPU per byte {pick(s.h1) / pick(s.h2):.2f}x)  "
        f"ECDSA {pick(s.ecdsa):6.0f} hs/cpu-s ({pick(s.ecdsa) / pick(c.ecdsa):.3f} of sign)  "
        f"RSA {pick(s.rsa):5.0f} hs/cpu-s ({pick(s.rsa) / pick(c.rsa):.2f} of sign)"
    )


def spread(values: list[float], digits: int = 0) -> str:
    return (
        f"p50 {percentile(values, 50):.{digits}f} (min {min(values):.{digits}f}, max {max(values):.{digits}f}, "
        f"n={len(values)})"
    )


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def figures(s: Samples, c: Ceilings) -> list[Figure]:
    """The rows of the side-by-side benchmark: per-run fractions, so each compares one run's load."""
    aes = ratios(s.h1, c.aes)
    h2_cost = ratios(s.h1, s.h2)  # CPU per byte of h2 over h1's
    ecdsa = ratios(s.ecdsa, c.ecdsa)
    rsa = ratios(s.rsa, c.rsa)
    return [
        Figure(
            "TLS large objects, HTTP/1.1: MB per HAProxy CPU-second / AES-256-GCM per CPU-second",
            f"{spread(aes, 2)}; {spread(s.h1)} MB",
            f"openssl speed {spread(c.aes)} MB/s; HAProxy's CPU in the kernel: {spread(s.h1_kernel, 2)}",
            f">= {GOAL_AES}",
            percentile(aes, 50) >= GOAL_AES,
        ),
        Figure(
            "TLS large objects: h2 CPU per byte / HTTP/1.1's",
            f"{spread(h2_cost, 2)}x; h2 {spread(s.h2)} MB",
            "",
            f"<= {GOAL_H2}x",
            percentile(h2_cost, 50) <= GOAL_H2,
        ),
        Figure(
            "TLS 1.3 full handshakes (ECDSA P-256) per HAProxy CPU-second / P-256 signs per CPU-second",
            f"{spread(ecdsa, 3)}; {spread(s.ecdsa)}/s",
            f"openssl speed {spread(c.ecdsa)} signs/s",
        ),
        Figure(
            "TLS 1.3 full handshakes (RSA 2048) per HAProxy CPU-second / RSA 2048 signs per CPU-second",
            f"{spread(rsa, 2)}; {spread(s.rsa)}/s",
            f"openssl speed {spread(c.rsa)} signs/s",
        ),
    ]


def section(runs: int) -> list[Figure]:
    """The TLS rows of the one-command benchmark, for the config the deploy renders today."""
    with tempfile.TemporaryDirectory(prefix="ober-bench-tls-") as tmp:
        samples, ceilings = measure(runs, {"ober": Variant()}, Path(tmp))
    return figures(samples["ober"], ceilings)


def parse_variant(text: str, root: Path | None = None) -> tuple[str, Variant]:
    name, _, lines = text.partition("=")
    return name, Variant(tuple(line.strip() for line in lines.split(";") if line.strip()), root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--variant", action="append", default=[], help="'name=global line;global line' tried beside ober's config"
    )
    parser.add_argument(
        "--root-variant",
        action="append",
        default=[],
        metavar="NAME=ROOT[;global line...]",
        help="ober's config (with the lines) served by the HAProxy of the Debian root ROOT (read-only: an overlay)",
    )
    args = parser.parse_args()
    variants = {"ober": Variant()} | dict(parse_variant(text) for text in args.variant)
    for text in args.root_variant:
        name, _, rest = text.partition("=")
        root, _, lines = rest.partition(";")
        variants[name] = parse_variant(f"{name}={lines}", Path(root))[1]
    with tempfile.TemporaryDirectory(prefix="ober-bench-tls-") as tmp:
        samples, ceilings = measure(args.runs, variants, Path(tmp))
    print()
    print(f"ceilings per CPU-second: AES-256-GCM {spread(ceilings.aes)} MB/s, P-256 sign {spread(ceilings.ecdsa)}/s, "
          f"RSA 2048 sign {spread(ceilings.rsa)}/s")  # fmt: skip
    for name, s in samples.items():
        print(f"{name:12} p50: {line_of(s, ceilings)}")
        print(f"{'':12} h1 {spread(s.h1)}  h2 {spread(s.h2)}  ECDSA {spread(s.ecdsa)}  RSA {spread(s.rsa)}")
        print(f"{'':12} h1: HAProxy's CPU in the kernel (stime share) {spread(s.h1_kernel, 2)}")
    print()
    print(markdown("TLS per HAProxy core", figures(samples["ober"], ceilings)))


if __name__ == "__main__":
    main()
