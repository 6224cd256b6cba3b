"""One fleet node: a Debian root filesystem booted with systemd (`systemd-nspawn --boot`) in a lab namespace.

The node runs what a production ingress node runs (systemd as PID 1, sshd, the units the deploy writes with
their PartOf=/Restart=/WatchdogSec=), so pyinfra reaches it over SSH exactly as an operator's laptop reaches
a real node. The node shares the network namespace `LabNetwork.add_host` made: eth0 already carries its
addresses, and nothing inside the image manages interfaces (no networkd, no ifupdown), so they stay.

SSH goes from a controller namespace on the same bridge (`ip netns exec CTL ssh ...`), never from the host
namespace, which has no lab address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from lab.netns import Host
from lab.procs import Supervisor, run, wait_for
from lab.rootfs import DEFAULT_SUITE, copy_rootfs, remove_rootfs

REBOOT_EXIT = 133  # systemd-nspawn's exit status when the node's systemd reboots (`systemctl reboot`)

SSH_OPTIONS = (
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=3",
)


def make_lab_key(workdir: Path) -> Path:
    """A fresh ed25519 key pair for this lab (private key path returned); never reused across labs."""
    key = workdir / "lab_key"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ober-lab", "-f", str(key))
    return key


class NspawnNode:
    """A booted systemd node. `prepare()` → `boot()` → `wait_running()`; `poweroff()` ends it, `remove()` cleans up."""

    def __init__(
        self,
        host: Host,
        workdir: Path,
        supervisor: Supervisor,
        controller: str,
        key: Path,
        suite: str = DEFAULT_SUITE,
        hosts: list[tuple[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.suite = suite  # the Debian release the node boots (lab.rootfs.NODE_SUITES)
        self.site_hosts = list(hosts or [])  # (address, name): the site's DNS, as the node's /etc/hosts
        self.name = host.name
        self.workdir = workdir  # the node's rootfs copy lives at workdir/root
        self.root = workdir / "root"
        self.supervisor = supervisor
        self.controller = controller  # namespace SSH runs from
        self.key = key
        self.proc_name = f"{self.name}-nspawn"
        self.powered_cut = False
        self.cgroup_name = f"ober-lab-{self.name}"
        self.boots = 0  # how many times it was started: a reboot starts it again

    # ---- lifecycle
    def prepare(self) -> None:
        """Unpack the node's own rootfs copy and give it its identity (hostname, machine-id, keys) and the
        site's names in /etc/hosts (what a site's DNS answers: the lab has no DNS server)."""
        copy_rootfs(self.root, suite=self.suite)
        (self.root / "etc/hostname").write_text(f"{self.name}\n")
        site = "".join(f"{address} {name}\n" for address, name in self.site_hosts)
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n::1 localhost\n{site}")
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        run("ssh-keygen", "-A", "-f", str(self.root))  # this node's own SSH host keys
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        authorized.chmod(0o600)

    def boot(self) -> None:
        """Start systemd-nspawn in the foreground as a supervised child; the console goes to `<name>-nspawn.log`.
        `boots` counts it once the new process is there (a waiter that sees the count rise then waits on it,
        not on the exited one)."""
        self.supervisor.start(
            self.proc_name,
            [
                *self._own_cgroup_prefix(),
                "systemd-nspawn",
                "--boot",
                "--register=no",  # no machined here (and none needed)
                "--keep-unit",
                f"--network-namespace-path=/run/netns/{self.name}",
                # the namespace is the node's own: it may configure its addresses (the VIPs), like a machine
                "--capability=CAP_NET_ADMIN",
                f"--machine={self.name}",
                "--console=read-only",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                "-D",
                str(self.root),
            ],
        )
        self.boots += 1

    def _own_cgroup_prefix(self) -> list[str]:
        """Command prefix that puts nspawn into a cgroup of its own before it starts.

        With --keep-unit nspawn puts the node under `<its own cgroup>/payload`. Two nodes started from the
        same cgroup would share that tree, and one node's systemd stopping `haproxy.service` would kill the
        other node's HAProxy too. On a systemd host a transient scope gives each node its own; elsewhere
        (this build machine: no systemd as PID 1) we make the cgroup by hand in each hierarchy.
        """
        if Path("/run/systemd/system").exists() and shutil.which("systemd-run"):
            return ["systemd-run", "--scope", "--quiet", f"--unit={self.cgroup_name}", "-p", "Delegate=yes", "--"]
        dirs = " ".join(str(h / self.cgroup_name) for h in _cgroup_hierarchies())
        if not dirs:
            return []
        script = f'for d in {dirs}; do mkdir -p "$d" && echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"'
        return ["sh", "-c", script, "ober-lab-cgroup"]

    def wait_running(self, timeout: float = 90.0) -> float:
        """Seconds until systemd in the node reports the boot finished (running, or degraded)."""

        def booted() -> bool:
            if self.supervisor.procs[self.proc_name].poll() is not None:
                raise RuntimeError(f"{self.name}: systemd-nspawn exited; see {self.proc_name}.log")
            state = self.ssh("systemctl", "is-system-running", check=False, timeout=5).stdout.strip()
            return state in ("running", "degraded")

        return wait_for(booted, timeout=timeout, what=f"{self.name} to boot (ssh + systemd)", interval=0.3)

    def rebooted(self) -> bool:
        """The node's systemd asked for a reboot: systemd-nspawn exited with 133 (and nobody booted it yet)."""
        proc = self.supervisor.procs.get(self.proc_name)
        return proc is not None and proc.poll() == REBOOT_EXIT

    def poweroff(self, timeout: float = 30.0) -> None:
        """Clean shutdown: SIGTERM to nspawn makes it send SIGRTMIN+3 to the node's systemd (an orderly
        poweroff); after `timeout` the node is killed."""
        proc = self.supervisor.procs.get(self.proc_name)
        if proc is None:
            return
        if self.powered_cut:
            self.power_restore()
        self.supervisor.stop(self.proc_name, timeout=timeout)
        self.remove_cgroups()

    def remove(self) -> None:
        """Delete the node's rootfs copy (after it is powered off)."""
        if self.root.exists():
            remove_rootfs(self.root)

    # ---- what tests do to a node
    def ssh_argv(self, *command: str) -> list[str]:
        return [
            "ip",
            "netns",
            "exec",
            self.controller,
            "ssh",
            "-i",
            str(self.key),
            *SSH_OPTIONS,
            f"root@{self.host.ipv4}",
            "--",
            *command,
        ]

    def ssh(self, *command: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command on the node as root over SSH (what an operator does)."""
        try:
            result = subprocess.run(
                self.ssh_argv(*command), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            if check:
                raise RuntimeError(f"{self.name}: `{' '.join(command)}` timed out after {timeout}s") from error
            return subprocess.CompletedProcess(command, 255, "", "timeout")
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name}: `{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def leader_pid(self) -> int:
        """The node's PID 1 (its systemd) as the host sees it: the descendant of systemd-nspawn whose pid in
        its own namespace is 1."""
        proc = self.supervisor.procs.get(self.proc_name)
        todo = [proc.pid] if proc is not None and proc.poll() is None else []
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if len(nspid) > 1 and nspid[-1] == "1":
                return pid
            todo += [int(child) for child in children]
        raise RuntimeError(f"{self.name}: no systemd-nspawn payload running")

    def nsenter(self, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node without SSH (the console, for when sshd is stopped: rescue mode)."""
        return run("nsenter", "-t", str(self.leader_pid()), "-a", *command, check=False, timeout=timeout)

    def main_pid(self, unit: str) -> int:
        """The unit's main PID as the node's systemd sees it (0 when the unit is not running)."""
        out = self.ssh("systemctl", "show", "--property=MainPID", "--value", unit).stdout.strip()
        return int(out or 0)

    def children(self, parent: int) -> dict[int, str]:
        """Child processes of `parent` on the node: pid -> command line."""
        out = self.ssh("ps", "-o", "pid=,args=", "--ppid", str(parent), check=False).stdout
        children = {}
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            if pid.isdigit():
                children[int(pid)] = args
        return children

    def cgroup(self) -> Path | None:
        """The cgroup v2 directory holding the whole node (its systemd and every unit below it)."""
        for hierarchy in _cgroup_hierarchies():
            if (hierarchy / "cgroup.freeze").exists() or (hierarchy / "cgroup.controllers").exists():
                group = hierarchy / self.cgroup_name
                return group if group.exists() else None
        return None

    def remove_cgroups(self) -> None:
        """Remove the node's hand-made cgroups (empty once nspawn is gone; nspawn removes its own sub-groups)."""
        for hierarchy in _cgroup_hierarchies():
            group = hierarchy / self.cgroup_name
            for sub in sorted(group.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()

    def power_cut(self, drop_link: bool = True) -> None:
        """Emulate a power loss: the node stops executing and its link goes dark, with no FIN, no Cease, no
        BFD 'down' sent. (SIGKILL of nspawn would close the node's TCP sockets cleanly: not a power cut.)
        `drop_link=False` freezes the node but leaves the carrier up: a hung machine, seen only by timers."""
        group = self.cgroup()
        if group is None or not (group / "cgroup.freeze").exists():
            raise RuntimeError(f"{self.name}: no cgroup v2 freezer for the node; cannot emulate a power cut")
        (group / "cgroup.freeze").write_text("1")
        if drop_link:
            run("ip", "-n", self.name, "link", "set", "eth0", "down")
        self.powered_cut = True

    def power_restore(self) -> None:
        """Undo `power_cut` (the node resumes where it froze; its BGP sessions then re-establish)."""
        run("ip", "-n", self.name, "link", "set", "eth0", "up")
        group = self.cgroup()
        if group is not None and (group / "cgroup.freeze").exists():
            (group / "cgroup.freeze").write_text("0")
        self.powered_cut = False


def _cgroup_hierarchies() -> list[Path]:
    """Where to make a node's cgroup: the v2 tree (pure or hybrid) and, on hybrid hosts, the name=systemd tree."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # pure cgroup v2
        return [base]
    return [h for h in (base / "systemd", base / "unified") if h.is_dir()]


def requirements_missing() -> str:
    """Why booted nodes cannot run here ('' when they can): for clear pytest skips and the demo's error."""
    if os.geteuid() != 0:
        return "needs root (namespaces, systemd-nspawn)"
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("zstd", "zstd"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
    ):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install {package})"
    return ""


__all__ = ["REBOOT_EXIT", "NspawnNode", "make_lab_key", "requirements_missing"]
