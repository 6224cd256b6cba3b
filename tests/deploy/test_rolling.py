"""The rolling restart (ober_deploy.rolling): one host at a time, and no further than the first host that
does not serve again.

- the shell one host runs (`restart_script`), with `sh` in a temporary directory and a stand-in
  `systemctl` first in PATH: the service stops with what runs, the staged files and the venv link go
  live, it starts with what the deploy brings, and the host must report itself serving within the bound
  or the script fails with the report;
- the operation over three hosts, run by the pyinfra CLI against `@chroot` hosts that hold a shell and a
  few tools: when the first host restarted does not serve again, the run fails there and the two other
  hosts are not touched (their live files stay, their staged copies go, their service is not restarted).
  The hosts' order is pyinfra's (it keeps active hosts in a set), so the test finds out which was first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.fleet import parse_pyinfra_output
from ober_deploy.rolling import restart_script
from ober_deploy.staged import STAGED_SUFFIX
from tests.deploy.support import PYINFRA, REPO, run, tool_chroot

FAKE_SYSTEMCTL = """#!/bin/sh
# stand-in for systemctl: records each call with what is live at that moment (the config file, the venv
# the link points at); `start` fails when {root}/start-fails exists
echo "$* live=$(cat {root}/etc/exabgp.conf 2>/dev/null) venv=$(cat {root}/opt/venv/marker 2>/dev/null)" \\
  >> {root}/systemctl.log
case "$1" in
  start) [ ! -e {root}/start-fails ] ;;
  status) for last; do :; done; echo "status of $last: failed (stand-in)" ;;
esac
"""
REPORT = "198.51.100.1 (AS65099): down since 12:00:01Z: peer sent NOTIFICATION: OPEN message error / Bad Peer AS"
FAKE_STATUS = f"""#!/bin/sh
# stand-in for `ober status`: serving once {{root}}/serving exists; its report names the peer and the reason
[ -e {{root}}/serving ] && exit 0
echo "{REPORT}"
exit 1
"""


@dataclass
class Host:
    root: Path

    @property
    def live(self) -> Path:
        return self.root / "etc" / "exabgp.conf"

    @property
    def staged(self) -> Path:
        return Path(str(self.live) + STAGED_SUFFIX)

    @property
    def link(self) -> Path:
        return self.root / "opt" / "venv"

    def venv(self, name: str) -> Path:
        return self.root / "opt" / "venvs" / name

    def calls(self) -> list[str]:
        log = self.root / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []


def make_host(root: Path, legacy_venv: bool = False) -> Host:
    """A host with a live file and its validated staged copy, venvs `old` (linked) and `new`, stand-ins."""
    host = Host(root)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("ober-status", FAKE_STATUS)):
        (root / "bin" / name).write_text(text.format(root=root))
        (root / "bin" / name).chmod(0o755)
    host.live.parent.mkdir(parents=True)
    host.live.write_text("old config\n")
    host.staged.write_text("new config\n")
    for name in ("old", "new"):
        host.venv(name).mkdir(parents=True)
        (host.venv(name) / "marker").write_text(name)
    if legacy_venv:
        host.link.mkdir()
        (host.link / "marker").write_text("legacy")
    else:
        host.link.symlink_to(host.venv("old"))
    return host


def roll(host: Host, timeout: float = 1.0, maintenance: bool = False) -> tuple[int, str]:
    script = restart_script(
        "node-7",
        "exabgp.service",
        swap=[str(host.live)],
        link=(str(host.link), str(host.venv("new"))),
        wait=f"{host.root}/bin/ober-status",
        timeout=timeout,
        skip_wait_if=str(host.root / "maintenance"),
        settle=0,
    )
    if maintenance:
        (host.root / "maintenance").write_text("")
    env = dict(os.environ, PATH=f"{host.root}/bin:{os.environ['PATH']}")
    result = run(["sh", "-c", script], timeout=30, env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    "variant",
    [
        {},  # everything: swap, link, wait, maintenance
        {"link": None, "skip_wait_if": None},
        {"wait": None, "swap": []},
        {"swap": ["/etc/with space/exabgp.conf"], "wait": "ober status --quiet"},
    ],
)
def test_the_restart_script_is_valid_sh_in_every_shape(variant: dict[str, Any], tmp_path: Path) -> None:
    """templates/rolling-restart.sh.j2 as restart_script renders it, with and without each part: `sh -n`."""
    args: dict[str, Any] = {
        "swap": ["/etc/ober/exabgp.conf", "/etc/ober/health.toml"],
        "link": ("/opt/ober/venv", "/opt/ober/venvs/abc"),
        "wait": "/opt/ober/venv/bin/ober status",
        "timeout": 30,
        "skip_wait_if": "/etc/ober/maintenance",
    } | variant
    script = tmp_path / "restart.sh"
    script.write_text(restart_script("node-7", "exabgp.service", **args))
    result = run(["sh", "-n", str(script)])
    assert result.returncode == 0, result.stderr
    assert ("ober status" in script.read_text()) is bool(args["wait"])


def test_a_host_that_serves_again_gets_its_staged_files_and_venv_and_loses_the_old_venv(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    (tmp_path / "serving").write_text("")
    code, output = roll(host)
    assert code == 0, output
    assert host.live.read_text() == "new config\n" and not host.staged.exists()
    assert host.link.resolve() == host.venv("new")
    assert host.calls() == [
        "stop exabgp.service live=old config venv=old",  # stopped (drained) by what runs
        "start exabgp.service live=new config venv=new",  # started with what this deploy brings
    ]
    assert sorted(p.name for p in host.venv("new").parent.iterdir()) == ["new"], "the old venv goes once serving"


def test_a_venv_directory_of_a_release_before_links_is_replaced_by_the_link(tmp_path: Path) -> None:
    host = make_host(tmp_path, legacy_venv=True)
    (tmp_path / "serving").write_text("")
    code, output = roll(host)
    assert code == 0, output
    assert host.calls()[0] == "stop exabgp.service live=old config venv=legacy"
    assert host.link.is_symlink() and host.link.resolve() == host.venv("new")
    assert sorted(p.name for p in host.link.parent.iterdir()) == ["venv", "venvs"]


def test_a_host_that_does_not_serve_within_the_bound_fails_with_its_status_report(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    code, output = roll(host, timeout=1.0)
    assert code != 0
    assert (
        "node-7: exabgp.service restarted, but "
        f"`{tmp_path}/bin/ober-status` did not succeed within 1s: the roll stops here" in output
    ), output
    assert REPORT in output, "the node's own report (peer, reason) reaches the operator"
    # this host did get the change (that is what failed); the old venv stays, to go back to
    assert host.live.read_text() == "new config\n" and host.link.resolve() == host.venv("new")
    assert host.venv("old").exists()


def test_a_host_in_maintenance_is_restarted_but_not_waited_for(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    code, output = roll(host, timeout=30.0, maintenance=True)
    assert code == 0, output
    assert "maintenance" in output and "not waited for" in output
    assert [call.split()[0] for call in host.calls()] == ["stop", "start"]


def test_a_failed_start_fails_the_host_with_the_units_status(tmp_path: Path) -> None:
    host = make_host(tmp_path)
    (tmp_path / "start-fails").write_text("")
    code, output = roll(host)
    assert code != 0
    assert "node-7: exabgp.service failed to start:" in output
    assert "status of exabgp.service: failed (stand-in)" in output


# ---- the operation over three hosts


DEPLOY = """
import json
from ober_deploy import rolling

spec = json.load(open("spec.json"))
rolling.restart(
    name="roll",
    service="exabgp.service",
    swap=["/etc/exabgp.conf"],
    wait="test -e /serving",
    timeout=1,
    settle=0,
    _serial=True,
)
"""
TOOLS = ["sh", "ls", "stat", "mv", "rm", "ln", "readlink", "date", "sleep", "cat"]


@pytest.fixture
def fleet(tmp_path: Path) -> list[Path]:
    if os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("the @chroot connector needs root")
    roots = []
    for i in range(1, 4):
        root = tool_chroot(tmp_path / f"node{i}", TOOLS)
        (root / "dev").mkdir()
        os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the shell redirects to it
        (root / "etc").mkdir()
        (root / "etc" / "exabgp.conf").write_text("old config\n")
        (root / "etc" / f"exabgp.conf{STAGED_SUFFIX}").write_text("new config\n")
        (root / "bin" / "systemctl").write_text(FAKE_SYSTEMCTL.format(root=""))
        (root / "bin" / "systemctl").chmod(0o755)
        roots.append(root)
    (tmp_path / "deploy.py").write_text(DEPLOY)
    (tmp_path / "spec.json").write_text(json.dumps({}))
    hosts: list[tuple[str, dict[str, str]]] = [(f"@chroot/{root}", {}) for root in roots]
    (tmp_path / "inventory.py").write_text(f"hosts = {hosts!r}\n")
    return roots


def run_roll(directory: Path) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = run([PYINFRA, "-y", "inventory.py", "deploy.py"], cwd=directory, timeout=120, env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.deploy
def test_the_roll_stops_at_the_first_host_that_does_not_serve_and_touches_no_other(fleet: list[Path]) -> None:
    code, output = run_roll(fleet[0].parent)
    assert code != 0, output
    restarted = [root for root in fleet if (root / "systemctl.log").exists()]
    assert len(restarted) == 1, f"restarted: {restarted}\n{output}"
    first = restarted[0]
    assert f"[@chroot/{first}] @chroot/{first}: exabgp.service restarted, but `test -e /serving`" in output, output
    assert (first / "etc" / "exabgp.conf").read_text() == "new config\n"
    for root in fleet:
        if root == first:
            continue
        assert (root / "etc" / "exabgp.conf").read_text() == "old config\n", f"{root}: touched"
        assert not (root / "etc" / f"exabgp.conf{STAGED_SUFFIX}").exists(), f"{root}: staged copy left"
        assert re.search(rf"\[@chroot/{root}\] not restarted: the roll stopped at @chroot/{first}", output), output
    _, _, errors = parse_pyinfra_output(output)
    assert set(errors) == {f"@chroot/{first}"}


@pytest.mark.deploy
def test_a_roll_where_every_host_serves_restarts_each_once(fleet: list[Path]) -> None:
    for root in fleet:
        (root / "serving").write_text("")
    code, output = run_roll(fleet[0].parent)
    assert code == 0, output
    for root in fleet:
        calls = (root / "systemctl.log").read_text().splitlines()
        assert [call.split()[:2] for call in calls] == [["stop", "exabgp.service"], ["start", "exabgp.service"]]
        assert (root / "etc" / "exabgp.conf").read_text() == "new config\n"
        assert not (root / "etc" / f"exabgp.conf{STAGED_SUFFIX}").exists()
