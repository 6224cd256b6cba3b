"""The site's Ceph RGW: real `radosgw` gateways, each in its own namespace on the lab bridge, sharing one store.

A site names its gateways and its DNS resolves them; so does the lab. Gateway i answers at
`rgw0i.lab.example:7480` (198.51.100.(60+i) and 2001:db8:100::(60+i)), and the fleet's `ober_backends`
is the hostlist `rgw[01-02].lab.example:7480`, exactly as an operator writes it. Clients use the S3
name `s3.lab.example` (the VIPs) with path-style addressing. `rgw dns name` is left unset: with it set,
RGW takes any other Host header (`rgw01.lab.example`, `localhost`) for a bucket name and answers 404
NoSuchBucket (measured), which only HAProxy's Host-less HTTP/1.0 health check would survive.

    site = RgwSite(network, workdir, supervisor, count=2)
    site.create_hosts()            # namespaces on the bridge
    site.start("reef")             # radosgw in each, one shared store, one S3 user
    site.use("tentacle")           # stop them, start the other build on the same addresses and names

radosgw runs standalone (no MON/OSD, auth none) on Ceph's `dbstore` backend, chrooted into a root built
once from Debian's archive and cached like the node image (lab/rootfs.py). That root is shared by every
lab on the machine and mounted read-only; each lab's store, config and sockets live in its own directory,
mounted on the root's /srv (all in a private mount namespace that ends with the daemon). Two builds,
because neither gets every data path right (measured on this kind of machine):

- `reef`: Ceph 18.2.7, Debian 13's own package. Signatures (SigV4, presigned), whole-object PUT/GET,
  listing, deletion are right. Range GETs and multipart uploads of 2+ parts return wrong bytes (dbstore
  bugs). Gateways share one SQLite store: in SQLite's default rollback journal a health check on one
  gateway made a PUT on the other fail (2 of 150 with AccessDenied) and answered 403 itself; in WAL mode
  (set here) a single sequential writer is safe, but two gateways writing at once still fail (14 of 160).
  So: sequential clients, single-part objects.
- `tentacle`: Ceph 20.2 from sid, dbstore with `rgw filter = posix` (objects are files under one shared
  directory). Range GETs, multipart uploads with parts on both gateways and concurrent writers are right.
  ListParts crashes the daemon (no SDK transfer calls it) and UploadPart fails for keys with a `.`. Each
  gateway keeps its own LMDB listing cache (`rgw posix database root`): radosgw wipes that directory at
  start, and two gateways starting on a shared one crashed (filesystem_error, SIGABRT); so listings may
  lag between gateways, and listing tests run on reef. sid moves: the version is whatever the archive has
  the day the image is built.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.netns import Host, LabNetwork
from lab.procs import Supervisor, netns_exec, run, wait_for
from lab.rootfs import Image, ensure_unpacked

RGW_PORT = 7480  # radosgw's default port
DOMAIN = "s3.lab.example"  # the site's S3 name: the VIPs answer to it
SITE_DOMAIN = "lab.example"  # the site's hosts, gateways included: rgw01.lab.example
INDEX_OFFSET = 50  # gateway i sits at lab index 50+i: 198.51.100.(60+i), 2001:db8:100::(60+i)
USER = "lab"


@dataclass(frozen=True)
class Flavor:
    """One radosgw build: the image it runs from and what its ceph.conf adds to the common part."""

    name: str
    image: Image
    conf: str
    wal: bool  # put the shared SQLite store into WAL mode before the gateways open it


FLAVORS = {
    "reef": Flavor("reef", Image("rgw", "trixie", ("radosgw",), bootable=False), "", wal=True),
    "tentacle": Flavor(
        "tentacle",
        Image("rgw", "sid", ("radosgw",), bootable=False),
        "        rgw filter = posix\n"
        "        rgw posix base path = /srv/rgwposix/root\n"
        "        rgw posix database root = /srv/rgwposix/lmdb-{gateway}\n",
        wal=False,
    ),
}

CONF = """\
[global]
        auth cluster required = none
        auth service required = none
        auth client required = none
        log to stderr = true
        err to stderr = true
[client]
        rgw backend store = dbstore
        rgw config store = dbstore
        dbstore db dir = /srv/rgw/db
        dbstore db name prefix = dbstore
        dbstore config uri = file:///srv/rgw/db/config.db
        rgw data = /srv/rgw/data
        run dir = /srv/rgw/run
        admin socket = /srv/rgw/run/$name.asok
        rgw frontends = beast {endpoints}
        rgw enable apis = s3, admin
        rgw thread pool size = 32
{extra}"""

# In a private mount namespace (gone with the process): the shared root read-only, the lab's own state on
# its /srv, a private /tmp, and the /proc and /dev radosgw needs. Every step execs, so the supervised PID is
# radosgw's own. Arguments: root, state directory, command...
CHROOT = """set -e
root=$0 state=$1
shift
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$state" "$root/srv"
mount -t tmpfs -o size=64m tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
exec chroot "$root" "$@"
"""


@dataclass
class Gateway:
    """One radosgw daemon's place in the site: its namespace and addresses, and the name the site gives it."""

    host: Host
    fqdn: str

    @property
    def short(self) -> str:
        return self.fqdn.split(".")[0]

    @property
    def endpoints(self) -> list[str]:
        return [f"{self.host.ipv4}:{RGW_PORT}", f"[{self.host.ipv6}]:{RGW_PORT}"]


class RgwSite:
    """The gateways of one lab. `down()` stops them and removes the unpacked roots."""

    def __init__(
        self,
        network: LabNetwork,
        workdir: Path,
        supervisor: Supervisor,
        count: int = 2,
        site_domain: str = SITE_DOMAIN,
    ) -> None:
        if not 1 <= count <= 9:
            raise ValueError(f"gateways: {count} is not 1..9")
        self.network = network
        self.workdir = workdir
        self.supervisor = supervisor
        self.count = count
        self.site_domain = site_domain
        self.gateways: list[Gateway] = []
        self.flavor: str | None = None
        self.access_key = "LAB" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.roots: dict[str, Path] = {}  # flavor -> the shared, read-only root
        self.states: dict[str, Path] = {}  # flavor -> this lab's /srv for it (store, configs, sockets)
        self.started: dict[str, float] = {}  # flavor -> seconds from exec to every gateway answering

    # ---- what the site looks like from outside
    @property
    def hostlist(self) -> str:
        """The gateways as an operator's inventory names them: `rgw[01-02].lab.example:7480`."""
        last = f"{self.count:02d}"
        names = "rgw01" if self.count == 1 else f"rgw[01-{last}]"
        return f"{names}.{self.site_domain}:{RGW_PORT}"

    def dns(self) -> list[tuple[str, str]]:
        """(address, name) pairs the site's DNS answers for the gateways."""
        entries = []
        for gateway in self.gateways:
            entries.append((gateway.host.ipv4, gateway.fqdn))
            entries.append((gateway.host.ipv6, gateway.fqdn))
        return entries

    # ---- lifecycle
    def create_hosts(self) -> None:
        """One namespace per gateway on the lab bridge (the router namespace must exist)."""
        for i in range(1, self.count + 1):
            host = self.network.add_host(f"{self.network.prefix}g{i}", INDEX_OFFSET + i)
            self.gateways.append(Gateway(host, f"rgw{i:02d}.{self.site_domain}"))

    def ensure_image(self, flavor: str) -> Path:
        """The flavor's root, built and unpacked in the cache if it is not there yet (slow once)."""
        return ensure_unpacked(_flavor(flavor).image)

    def start(self, flavor: str = "reef", timeout: float = 30.0) -> float:
        """Start every gateway with `flavor`; seconds until all of them answer `HEAD /` with 200."""
        spec = _flavor(flavor)
        self._prepare(spec)
        started = time.monotonic()
        for gateway in self.gateways:
            self.supervisor.start(
                self._proc(gateway),
                self._chroot(
                    spec,
                    "radosgw",
                    "-d",
                    "--no-mon-config",
                    "-c",
                    f"/srv/rgw/{gateway.short}.conf",
                    "-n",
                    f"client.rgw.{gateway.short}",
                ),
                netns=gateway.host.name,
            )
        self.flavor = flavor
        for gateway in self.gateways:
            wait_for(
                lambda g=gateway: self._answers(g),  # type: ignore[misc]
                timeout=max(0.1, timeout - (time.monotonic() - started)),
                what=f"{gateway.fqdn} ({flavor}) to answer HEAD / (see {self._proc(gateway)}.log)",
                interval=0.05,
            )
        self.started[flavor] = time.monotonic() - started
        return self.started[flavor]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every gateway at once, then wait for each (radosgw takes about 1.5 s to exit)."""
        procs = [self.supervisor.procs.get(self._proc(g)) for g in self.gateways]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for gateway in self.gateways:
            self.supervisor.stop(self._proc(gateway), timeout=timeout)
        self.flavor = None

    def use(self, flavor: str) -> float:
        """Make `flavor` the running build (a no-op when it already is); seconds until it answers."""
        if self.flavor == flavor:
            return 0.0
        self.stop()
        return self.start(flavor)

    def down(self) -> None:
        """Stop the gateways and delete this lab's stores (the shared roots stay in the cache)."""
        self.stop()
        for state in self.states.values():
            shutil.rmtree(state, ignore_errors=True)
        self.states.clear()

    # ---- what tests look at
    def log(self, gateway: Gateway) -> str:
        """Everything the gateway's radosgw wrote (all runs of this lab)."""
        path = self.workdir / f"{self._proc(gateway)}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def version(self, flavor: str) -> str:
        """`radosgw --version` of a flavor's root, e.g. `ceph version 18.2.7 (...) reef (stable)`."""
        spec = _flavor(flavor)
        self._prepare(spec)
        argv = self._chroot(spec, "radosgw", "--version")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return result.stdout.strip()

    # ---- internals
    def _proc(self, gateway: Gateway) -> str:
        return f"{gateway.host.name}-radosgw"

    def _answers(self, gateway: Gateway) -> bool:
        proc = self.supervisor.procs.get(self._proc(gateway))
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{gateway.fqdn}: radosgw exited ({proc.returncode}); see {self._proc(gateway)}.log")
        url = f"http://{gateway.host.ipv4}:{RGW_PORT}/"
        result = run(
            *netns_exec(gateway.host.name, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-I", url),
            check=False,
            timeout=5,
        )
        return result.stdout.strip() == "200"

    def _chroot(self, spec: Flavor, *argv: str) -> list[str]:
        """`argv` run in the flavor's root with this lab's state on /srv (see CHROOT)."""
        root, state = self.roots[spec.name], self.states[spec.name]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", CHROOT, str(root), str(state), *argv]

    def _prepare(self, spec: Flavor) -> None:
        """The flavor's shared root (unpacked once in the cache) and this lab's state for it: configs, an
        empty store, the S3 user."""
        if spec.name in self.states:
            return
        self.roots[spec.name] = ensure_unpacked(spec.image)
        state = self.workdir / f"rgw-{spec.name}-srv"
        subs = ["rgw/db", "rgw/data", "rgw/run", "rgwposix/root"]
        subs += [f"rgwposix/lmdb-{gateway.short}" for gateway in self.gateways]
        for sub in subs:
            (state / sub).mkdir(parents=True, exist_ok=True)
        for gateway in self.gateways:
            endpoints = " ".join(f"endpoint={e}" for e in gateway.endpoints)
            extra = spec.conf.format(gateway=gateway.short)
            conf = CONF.format(endpoints=endpoints, extra=extra)
            (state / f"rgw/{gateway.short}.conf").write_text(conf)
        self.states[spec.name] = state
        # the S3 user, in the shared store (radosgw-admin needs no network: the host namespace is fine)
        self._admin(spec, "user", "create", "--uid", USER, "--display-name", "ober lab",
                    "--access-key", self.access_key, "--secret", self.secret_key)  # fmt: skip
        if spec.wal:
            for database in sorted((state / "rgw/db").glob("*.db")):
                with sqlite3.connect(database) as connection:
                    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise RuntimeError(f"{database}: SQLite kept journal mode {mode!r}, not WAL")

    def _admin(self, spec: Flavor, *args: str, attempts: int = 3) -> None:
        """radosgw-admin on a fresh store. Reef's radosgw-admin now and then never finishes (`user create`:
        3 times in about 250 runs here), so it is bounded, and retried on a wiped store."""
        conf = f"/srv/rgw/{self.gateways[0].short}.conf"
        argv = self._chroot(spec, "radosgw-admin", "--no-mon-config", "-c", conf, *args)
        for attempt in range(1, attempts + 1):
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            except subprocess.TimeoutExpired:
                print(f"[rgw] radosgw-admin {' '.join(args[:2])} hung (attempt {attempt}); retrying on a wiped store",
                      file=sys.stderr, flush=True)  # fmt: skip
                for leftover in (self.states[spec.name] / "rgw/db").iterdir():
                    leftover.unlink()
                continue
            if result.returncode != 0:
                raise RuntimeError(
                    f"radosgw-admin {' '.join(args[:2])} failed: {(result.stderr or result.stdout)[-1500:]}"
                )
            return
        raise RuntimeError(f"radosgw-admin {' '.join(args[:2])} hung {attempts} times (20 s each)")


def _flavor(name: str) -> Flavor:
    if name not in FLAVORS:
        raise ValueError(f"RGW flavor: {name!r} is not one of {', '.join(FLAVORS)}")
    return FLAVORS[name]


__all__ = ["DOMAIN", "FLAVORS", "RGW_PORT", "SITE_DOMAIN", "Flavor", "Gateway", "RgwSite"]
