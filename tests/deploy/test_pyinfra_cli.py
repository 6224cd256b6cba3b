"""`pyinfra INVENTORY deploy.py` as an operator runs it, in a subprocess (pyinfra_cli patches the stdlib with
gevent when imported, so never in this process), from the repository root (deploy.py includes tasks/ by
relative path).

- a bad value stops the run before any operation, naming host, key and value, on any host of the fleet;
- `--dry` for a RHEL 10 and a Debian 12 node. The node's facts are the one thing faked (there is no such
  node here): a runner script replaces `Host.get_fact` in the subprocess with the answers of a fresh node
  of that distribution, then calls pyinfra's own CLI. Every fact the deploy asks for must be in its table
  (an unknown one fails the run), and after the CLI has planned, the runner writes each operation's
  commands and uploaded file contents to a JSON file the test reads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.tlsca import LabCa
from ober_deploy.kernel import SYSCTLS
from ober_deploy.wheels import WheelSet
from ober_health.paths import PATHS
from tests.deploy.support import REPO, ROUTER_V4, VENV_BIN, run, tool_chroot

pytestmark = pytest.mark.deploy

PYINFRA = str(VENV_BIN / "pyinfra")
GOOD = {
    "ober_local_asn": 65001,
    "ober_router_id": "198.51.100.11",
    "ober_peers": [{"address": ROUTER_V4, "asn": 65000, "bfd": True}],
    "ober_vips": ["203.0.113.10/32"],
    "ober_backends": "127.0.0.1:7480",
    "ober_http": True,
}
OPERATION_MARKS = ("Starting operation", "Beginning operation run", "Detected changes", "Success", "--> Results")


def write_inventory(path: Path, hosts: list[tuple[str, dict[str, Any]]]) -> Path:
    path.write_text(f"hosts = {hosts!r}\n")
    return path


def pyinfra(*args: str) -> tuple[int, str]:
    result = run([PYINFRA, *args], cwd=REPO, timeout=120)
    return result.returncode, result.stdout + result.stderr


# ---- a bad inventory: nothing happens


def test_bad_value_stops_the_run_before_any_operation(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.py", [("@local", {**GOOD, "ober_local_asn": 0})])
    code, output = pyinfra("-y", "--dry", str(inventory), "deploy.py")
    assert code != 0, output
    assert "invalid inventory, nothing was changed" in output
    assert "@local: ober_local_asn: 0 is out of range (1..4294967295)" in output
    for mark in OPERATION_MARKS:
        assert mark not in output, f"{mark!r} in the output of a run that must stop before any operation"


def minimal_chroot(root: Path) -> Path:
    """A directory pyinfra's @chroot connector accepts (it runs `chroot DIR ls`), with nothing else in it:
    no shell, so no operation could run there even if the validation let one through."""
    return tool_chroot(root, ["ls"])


def tree(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot"), reason="the @chroot connector needs root")
def test_a_bad_value_on_the_last_host_stops_every_host(tmp_path: Path) -> None:
    """Two hosts, the second one bad: the run stops while the first is being planned, with every problem of
    the fleet in one message, and (no --dry) nothing is written on either host."""
    roots = [minimal_chroot(tmp_path / "node1"), minimal_chroot(tmp_path / "node2")]
    before = [tree(root) for root in roots]
    hosts = [
        (f"@chroot/{roots[0]}", GOOD),
        (f"@chroot/{roots[1]}", {**GOOD, "ober_hold_time": 2, "ober_vips": ["203.0.113.10/24"]}),
    ]
    code, output = pyinfra("-y", str(write_inventory(tmp_path / "inventory.py", hosts)), "deploy.py")
    assert code != 0, output
    assert "Connected" in output  # both hosts were reachable: it is the validation that stopped the run
    assert f"@chroot/{roots[1]}: ober_hold_time: 2 is out of range (3..65535)" in output
    assert f"@chroot/{roots[1]}: ober_vips[0].prefix: '203.0.113.10/24' is not an IP prefix (host bits set" in output
    assert f"@chroot/{roots[0]}:" not in output.replace(f"[@chroot/{roots[0]}] Connected", "")
    for mark in OPERATION_MARKS:
        assert mark not in output
    assert [tree(root) for root in roots] == before


# ---- --dry with a node's facts


RUNNER = r'''
"""Run pyinfra's CLI with the facts of a fresh node of one distribution; write the plan as JSON."""
import json
import sys

from gevent import monkey

monkey.patch_all()

from pyinfra.api.command import FileUploadCommand, StringCommand  # noqa: E402
from pyinfra.api.facts import ShortFactBase  # noqa: E402
from pyinfra.api.host import Host  # noqa: E402
from pyinfra.context import ctx_config, ctx_host, ctx_state  # noqa: E402

node = json.loads(open(sys.argv[1]).read())
plan_file = sys.argv[2]
asked = []


def command(text):
    for prefix, answer in node["commands"].items():
        if text.startswith(prefix):
            return answer
    raise KeyError(f"no faked answer for the command fact {text!r}")


FACTS = {
    "LinuxDistribution": lambda **k: node["distribution"],
    "Os": lambda **k: "Linux",
    "RpmPackages": lambda **k: {},
    "RpmPackageProvides": lambda **k: [],
    "DebPackages": lambda **k: {},
    "Groups": lambda **k: [],
    "Users": lambda **k: {},
    "Which": lambda command, **k: f"/usr/sbin/{command}",
    # nothing there on a fresh node; everything there on a node being uninstalled ("installed": true)
    "File": lambda **k: {"mode": 644, "user": "root", "group": "root"} if node.get("installed") else None,
    "Socket": lambda **k: None,  # HAProxy not running yet: no stats socket
    "Directory": lambda **k: {"mode": 755, "user": "root", "group": "root"} if node.get("installed") else None,
    "Link": lambda **k: {"link_target": "/elsewhere"} if node.get("installed") else None,
    "FindFiles": lambda **k: [],
    "Sha1File": lambda **k: None,
    "Md5File": lambda **k: None,
    "Sha256File": lambda **k: None,
    "TmpDir": lambda **k: "/tmp",
    "SystemdStatus": lambda **k: {},
    "SystemdEnabled": lambda **k: {},
    "OberInstall": lambda **k: {"link": None, "version": None, "venvs": []},  # nothing of ober installed yet
}


def get_fact(self, cls, *args, **kwargs):
    asked.append(cls.__name__)
    if issubclass(cls, ShortFactBase):
        return cls().process_data(get_fact(self, cls.fact, *args, **kwargs))
    if cls.__name__ == "Command":
        return command(args[0] if args else kwargs["command"])
    if cls.__name__ not in FACTS:
        raise KeyError(f"no faked answer for the fact {cls.__name__}")
    return FACTS[cls.__name__](*args, **kwargs)


Host.get_fact = get_fact

from pyinfra_cli.main import main  # noqa: E402

sys.argv = ["pyinfra", *sys.argv[3:]]
code = 0
try:
    main()
except SystemExit as exit:
    code = exit.code or 0

operations = []
state = ctx_state.get()
if state is not None and state.inventory is not None:
    for host in state.inventory:
        for op_hash in state.get_op_order():
            op = state.ops.get(host, {}).get(op_hash)
            if op is None:
                continue
            commands = []
            with ctx_host.use(host), ctx_config.use(state.config.copy()):
                for cmd in op.command_generator():
                    if isinstance(cmd, FileUploadCommand):
                        src = cmd.src.getvalue() if hasattr(cmd.src, "getvalue") else f"<file {cmd.src}>"
                        commands.append({"upload": cmd.dest, "content": src})
                    elif isinstance(cmd, StringCommand):
                        commands.append({"shell": cmd.get_raw_value()})
                    else:
                        commands.append({"other": repr(cmd)})
            operations.append({"host": host.name, "names": sorted(state.op_meta[op_hash].names), "commands": commands})
json.dump({"code": code, "facts": asked, "operations": operations}, open(plan_file, "w"), indent=1)
sys.exit(code)
'''

RHEL10 = {
    "name": "RedHat",
    "major": 10,
    "minor": 0,
    "release_meta": {"ID": "rhel", "ID_LIKE": "fedora", "VERSION_ID": "10.0"},
}
DEBIAN12 = {"name": "Debian", "major": 12, "minor": 9, "release_meta": {"ID": "debian", "VERSION_ID": "12"}}
DEBIAN13 = {"name": "Debian", "major": 13, "minor": 2, "release_meta": {"ID": "debian", "VERSION_ID": "13"}}
ALL_SYSCTLS_WRITABLE = "\n".join(key for key, _, _ in SYSCTLS)


def node_facts(
    distribution: dict[str, Any], nproc: str, hard_limit: str, sysctls: str, haproxy: str = ""
) -> dict[str, Any]:
    """A fresh node: nothing of ober's installed; `haproxy` is what ober_deploy.haproxy.VERSION_COMMAND
    prints there (HAProxy not installed yet: apt's candidate version, or nothing on RHEL)."""
    return {
        "distribution": distribution,
        "commands": {
            "haproxy -v": haproxy,
            "nproc": nproc,
            "ulimit -Hn": hard_limit,
            "[ -w /proc/sys/": sysctls,  # the probe of writable sysctl keys
            "systemd-detect-virt": "none" if sysctls else "systemd-nspawn",
            "test -c /dev/watchdog": "no",
            "ls -1 /opt/ober/wheels": "",
        },
    }


class Plan:
    def __init__(self, raw: dict[str, Any], output: str, wheels: Path) -> None:
        self.code: int = raw["code"]
        self.facts: list[str] = raw["facts"]
        self.operations: list[dict[str, Any]] = raw["operations"]
        self.output = output
        self.venv = PATHS.venv_of(WheelSet.read(wheels).digest)  # where this plan installs the wheel set

    def shell(self) -> list[str]:
        return [c["shell"] for op in self.operations for c in op["commands"] if "shell" in c]

    def uploads(self) -> dict[str, str]:
        return {c["upload"]: c["content"] for op in self.operations for c in op["commands"] if "upload" in c}

    def names(self) -> list[str]:
        return [name for op in self.operations for name in op["names"]]


def dry_run(
    tmp_path: Path, facts: dict[str, Any], data: dict[str, Any] | None = None, deploy_file: str = "deploy.py"
) -> Plan:
    wheels = tmp_path / "wheels"  # the wheel set the deploy uploads (building it would need an index)
    wheels.mkdir()
    (wheels / "ober_health-0.1.0-py3-none-any.whl").write_bytes(b"a wheel")
    inventory = write_inventory(
        tmp_path / "inventory.py", [("@local", {**GOOD, "ober_wheels_dir": str(wheels), **(data or {})})]
    )
    (tmp_path / "runner.py").write_text(RUNNER)
    (tmp_path / "node.json").write_text(json.dumps(facts))
    plan_file = tmp_path / "plan.json"
    argv = [str(VENV_BIN / "python"), str(tmp_path / "runner.py"), str(tmp_path / "node.json"), str(plan_file)]
    result = run([*argv, "--dry", str(inventory), deploy_file], cwd=REPO, timeout=120)
    output = result.stdout + result.stderr
    assert plan_file.exists(), output
    plan = Plan(json.loads(plan_file.read_text()), output, wheels)
    assert plan.code == result.returncode
    return plan


@pytest.fixture(scope="module")
def rhel(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    plan = dry_run(tmp_path_factory.mktemp("rhel"), node_facts(RHEL10, "4", "524288", ALL_SYSCTLS_WRITABLE))
    assert plan.code == 0, plan.output
    return plan


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    plan = dry_run(tmp_path_factory.mktemp("debian"), node_facts(DEBIAN12, "2", "20000", "", "\n2.6.12-1+deb12u4\n"))
    assert plan.code == 0, plan.output
    return plan


@pytest.fixture(scope="module")
def debian13(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    facts = node_facts(DEBIAN13, "2", "524288", "", "\n3.0.11-1+deb13u4\n")
    plan = dry_run(tmp_path_factory.mktemp("debian13"), facts)
    assert plan.code == 0, plan.output
    return plan


def test_haproxy_keywords_follow_the_nodes_haproxy_version(rhel: Plan, debian: Plan, debian13: Plan) -> None:
    """Debian 13's HAProxy 3.0 gets `timeout client-hs`; Debian 12's 2.6 (which rejects it) and a node whose
    version is unknown (RHEL before HAProxy is installed) get the config every version accepts."""
    assert "timeout client-hs 10s" in debian13.uploads()["/etc/haproxy/haproxy.cfg.ober-new"]
    assert "client-hs" not in debian.uploads()["/etc/haproxy/haproxy.cfg.ober-new"]
    assert "client-hs" not in rhel.uploads()["/etc/haproxy/haproxy.cfg.ober-new"]
    installs = [c for c in debian13.shell() if "apt-get" in c and " install " in c]
    assert len(installs) == 1 and "haproxy" in installs[0].split(), "Debian 13: apt and Debian's package names"


def test_rhel_plan_installs_with_dnf_and_rhel_package_names(rhel: Plan) -> None:
    installs = [c for c in rhel.shell() if c.startswith("dnf install")]
    assert installs == ["dnf install -y haproxy python3 python3-pip iproute ca-certificates socat frr"]
    assert not [c for c in rhel.shell() if c.startswith(("apt", "apt-get", "dpkg"))]
    assert "DebPackages" not in rhel.facts and "RpmPackages" in rhel.facts


def test_debian_plan_installs_with_apt_and_debian_package_names(debian: Plan) -> None:
    """The control of the RHEL plan: the same deploy, other facts, other package manager and names."""
    installs = [c for c in debian.shell() if "apt-get" in c and " install " in c]
    assert len(installs) == 1, debian.shell()
    for package in ("haproxy", "python3-venv", "iproute2", "socat", "frr"):
        assert package in installs[0].split()
    assert "--no-install-recommends" in installs[0]
    assert not [c for c in debian.shell() if c.startswith("dnf")]


def test_bfdd_unit_runs_the_distributions_bfdd(rhel: Plan, debian: Plan) -> None:
    unit = "/etc/systemd/system/ober-bfdd.service"
    assert "ExecStart=/usr/libexec/frr/bfdd " in rhel.uploads()[unit]
    assert "ExecStart=/usr/lib/frr/bfdd " in debian.uploads()[unit]
    assert f" peer {ROUTER_V4} local-address 198.51.100.11" in rhel.uploads()["/etc/frr/ober-bfdd.conf"]


def test_configs_are_staged_and_go_live_only_after_their_checker(rhel: Plan) -> None:
    """HAProxy's config is swapped by its check; ExaBGP's and ober-health's (checked by the venv being
    installed) wait staged for the rolling restart, which moves them into place just before it restarts."""
    uploads, shell = rhel.uploads(), rhel.shell()
    roll = [c for c in shell if "systemctl stop exabgp.service" in c and "systemctl start exabgp.service" in c]
    assert len(roll) == 1, roll
    for live, check, swapped_by_check in (
        ("/etc/haproxy/haproxy.cfg", "haproxy -c -f /etc/haproxy/haproxy.cfg.ober-new 2>&1", True),
        ("/etc/ober/exabgp.conf", f"{rhel.venv}/bin/exabgp validate /etc/ober/exabgp.conf.ober-new 2>&1", False),
        (
            "/etc/ober/health.toml",
            f"{rhel.venv}/bin/ober-health --check --config /etc/ober/health.toml.ober-new 2>&1",
            False,
        ),
    ):
        assert live + ".ober-new" in uploads and live not in uploads, f"{live} must be uploaded staged"
        checks = [c for c in shell if check in c]
        assert len(checks) == 1, (check, shell)
        swap = f"mv -f {live}.ober-new {live}"
        assert checks[0].endswith(swap) is swapped_by_check, checks[0]
        assert (swap in roll[0]) is not swapped_by_check
        assert shell.index(checks[0]) < shell.index(roll[0])
    assert f"ln -sfn {rhel.venv} /opt/ober/venv.ober-link" in roll[0], "the new venv goes live in the roll too"


def test_haproxy_threads_and_maxconn_follow_the_node(rhel: Plan, debian: Plan) -> None:
    rhel_cfg = rhel.uploads()["/etc/haproxy/haproxy.cfg.ober-new"]
    assert "    nbthread 4\n" in rhel_cfg and "    maxconn 100000\n" in rhel_cfg
    debian_cfg = debian.uploads()["/etc/haproxy/haproxy.cfg.ober-new"]
    # a hard descriptor limit of 20000 (some containers): maxconn lowered so reloads do not fail
    assert "    nbthread 2\n" in debian_cfg and "    maxconn 9500\n" in debian_cfg
    assert "ober_maxconn 100000 lowered to 9500" in debian.output


def test_kernel_tuning_written_where_writable_and_commented_out_in_a_container(rhel: Plan, debian: Plan) -> None:
    assert "net.core.somaxconn = 65535" in rhel.uploads()["/etc/sysctl.d/60-ober.conf"]
    assert "\n# net.core.somaxconn = 65535  # skipped" in debian.uploads()["/etc/sysctl.d/60-ober.conf"]
    assert "kernel tuning: 20 of 20 keys not writable (container: systemd-nspawn)" in debian.output


def test_the_wheels_go_up_and_pip_installs_them_without_an_index(rhel: Plan) -> None:
    assert "/opt/ober/wheels/ober_health-0.1.0-py3-none-any.whl" in rhel.uploads()
    pip = [c for c in rhel.shell() if "/bin/pip install" in c]
    assert len(pip) == 1 and "--no-index" in pip[0]
    assert pip[0].startswith(f"{rhel.venv}/bin/pip install"), "into the venv named after the wheels' content"
    assert f"python3 -m venv {rhel.venv}" in rhel.shell()


def test_rhel_plan_creates_the_haproxy_socket_directory(rhel: Plan) -> None:
    uploads = rhel.uploads()
    assert "/etc/tmpfiles.d/ober-haproxy.conf" in uploads
    assert "/run/haproxy" in uploads["/etc/tmpfiles.d/ober-haproxy.conf"]


def test_unsupported_distribution_is_refused_by_name(tmp_path: Path) -> None:
    alpine = {"name": "Alpine", "major": 3, "minor": 20, "release_meta": {"ID": "alpine"}}
    plan = dry_run(tmp_path, node_facts(alpine, "1", "4096", ""))
    assert plan.code != 0
    assert "Alpine (alpine) is not Debian/Ubuntu or RHEL-like" in plan.output
    assert plan.operations == []


def test_no_fact_is_gathered_for_a_bad_inventory(tmp_path: Path) -> None:
    """Through the same runner as the plans above: the validation stops the run before the first fact."""
    plan = dry_run(tmp_path, node_facts(RHEL10, "4", "524288", ""), {"ober_peers": []})
    assert plan.code != 0
    assert "@local: ober_peers: [] is not a non-empty list" in plan.output
    assert plan.facts == [] and plan.operations == []


# ---- HAProxy's inputs: one reload per run; the whitelist sync on its own

RELOAD = f"sh {PATHS.haproxy_reload}"


def test_the_deploy_reloads_haproxy_once_after_its_inputs_and_its_checked_config(rhel: Plan) -> None:
    """tasks/haproxy.py declares what HAProxy reads: the whitelist ACL file and the TLS bundles are written
    before haproxy.cfg is checked against them, and ONE reload follows, after all of them."""
    steps = [
        (op["names"][0], c.get("upload") or c.get("shell", ""))
        for op in rhel.operations
        for c in op["commands"]
        if "upload" in c or "shell" in c
    ]
    reloads = [i for i, (_, command) in enumerate(steps) if command == RELOAD]
    assert len(reloads) == 1, [name for name, _ in steps]
    acl = next(i for i, (_, command) in enumerate(steps) if command == PATHS.frontend_acl)
    check = next(
        i for i, (_, command) in enumerate(steps) if "haproxy -c -f /etc/haproxy/haproxy.cfg.ober-new" in command
    )
    assert acl < check < reloads[0]
    restart = next(i for i, (_, command) in enumerate(steps) if "systemctl stop exabgp.service" in command)
    assert reloads[0] < restart  # and the roll of ExaBGP is its own, later decision


def test_the_whitelist_sync_writes_the_acl_and_reloads_haproxy_and_nothing_else(tmp_path: Path) -> None:
    """`pyinfra INVENTORY tasks/whitelists.py` (the seed's `ober sync`): the inventory is validated, then the
    ACL file, the reload script and the reload; no ExaBGP, no haproxy.cfg, no package, no unit."""
    facts = node_facts(DEBIAN12, "2", "524288", "", "\n2.6.12-1+deb12u4\n")
    plan = dry_run(tmp_path, facts, {"ober_whitelist_frontend": ["198.51.100.0/24"]}, deploy_file="tasks/whitelists.py")
    assert plan.code == 0, plan.output
    uploads = plan.uploads()
    assert set(uploads) == {PATHS.frontend_acl, PATHS.haproxy_reload}, sorted(uploads)
    assert [line for line in uploads[PATHS.frontend_acl].splitlines() if not line.startswith("#")] == [
        "198.51.100.0/24"
    ]
    assert [c for c in plan.shell() if "exabgp" in c or "haproxy -c" in c] == []
    assert plan.shell()[-1] == RELOAD


def test_the_whitelist_sync_refuses_a_bad_inventory_before_any_operation(tmp_path: Path) -> None:
    facts = node_facts(DEBIAN12, "2", "524288", "")
    plan = dry_run(tmp_path, facts, {"ober_whitelist_frontend": ["198.51.100.0/33"]}, deploy_file="tasks/whitelists.py")
    assert plan.code != 0
    assert "@local: ober_whitelist_frontend" in plan.output
    assert plan.facts == [] and plan.operations == []


# ---- the uninstall removes what the deploy wrote, derived from the same path model


def test_every_file_the_deploy_writes_is_ober_s_own_in_the_path_model(rhel: Plan, debian: Plan) -> None:
    """What the uninstall removes is NodePaths.owned(): every file either plan uploads lies in it (or is the
    staged haproxy.cfg, which the uninstall removes beside it), so a new node file is a new NodePaths field."""
    owned = PATHS.owned()
    staged = f"{PATHS.haproxy_config}.ober-new"
    for plan in (rhel, debian):
        outside = [dest for dest in plan.uploads() if dest != staged and not owned.covers(dest)]
        assert outside == [], f"the deploy writes files the uninstall does not know: {outside}"
    assert owned.covers(PATHS.cli_link) and not owned.covers(PATHS.haproxy_config)


def test_the_uninstall_removes_every_path_the_deploy_writes(tmp_path: Path, rhel: Plan) -> None:
    """`pyinfra INVENTORY tasks/uninstall.py` planned on a node where everything is there: the services
    stop first, then every file the deploy uploaded is removed (itself, or with its directory), then the
    distribution's haproxy.cfg comes back."""
    facts = {**node_facts(DEBIAN12, "2", "524288", ""), "installed": True}
    plan = dry_run(tmp_path, facts, deploy_file="tasks/uninstall.py")
    assert plan.code == 0, plan.output
    shell = plan.shell()
    removed = [c.split()[-1] for c in shell if c.startswith(("rm -f ", "rm -rf "))]

    def gone(path: str) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in removed)

    assert [dest for dest in rhel.uploads() if not gone(dest)] == []
    assert gone(PATHS.cli_link) and not gone(PATHS.haproxy_config)
    stop = shell.index("sh /run/ober-uninstall.sh stop")
    restore = shell.index("sh /run/ober-uninstall.sh restore")
    first_rm = next(i for i, c in enumerate(shell) if c.startswith(("rm -f ", "rm -rf ")))
    assert stop < first_rm and max(i for i, c in enumerate(shell) if c.startswith("rm -")) < restore


# ---- OCSP stapling (ober_ocsp_stapling)


def test_ocsp_stapling_plans_the_response_files_before_the_reload_and_the_timer_after_the_roll(tmp_path: Path) -> None:
    """With the option: each bundle gets its empty `<bundle>.ocsp` (0600) before the one reload (HAProxy then
    staples for it), ober-ocsp's units go up after ExaBGP's roll (the venv they name holds this run's `ober`),
    the timer is enabled and the first fetch runs through the unit; every file is ober's own (the uninstall
    removes it). Without the option (the other plans) none of it."""
    bundle = LabCa(tmp_path / "ca").server_bundle(
        "s3.lab.example", ["203.0.113.10"], ocsp_url="http://ocsp.lab.example/"
    )
    facts = node_facts(DEBIAN12, "2", "524288", "", "\n2.6.12-1+deb12u4\n")
    plan = dry_run(tmp_path, facts, {"ober_tls_certificates": [str(bundle)], "ober_ocsp_stapling": True})
    assert plan.code == 0, plan.output
    shell = plan.shell()
    response = f"{PATHS.certs_dir}/{bundle.name}.ocsp"
    touch = next(i for i, c in enumerate(shell) if c.startswith("touch ") and response in c)
    emptied = next(i for i, c in enumerate(shell) if c == f": > {response}")  # the bundle is new: any old one out
    reload = shell.index(RELOAD)
    roll = next(i for i, c in enumerate(shell) if "systemctl stop exabgp.service" in c)
    first_fetch = next(i for i, c in enumerate(shell) if c.startswith("systemctl start ober-ocsp.service"))
    assert emptied < reload and touch < reload < roll < first_fetch
    assert any(f"chmod 600 {response}" in c for c in shell)
    uploads = plan.uploads()
    assert {PATHS.ocsp_unit, PATHS.ocsp_timer} <= set(uploads)
    assert "systemctl enable ober-ocsp.timer" in shell
    assert any("apt-get" in c and " openssl" in c for c in shell)  # `ober ocsp-update` runs it
    owned = PATHS.owned()
    assert [dest for dest in uploads if not dest.endswith(".ober-new") and not owned.covers(dest)] == []
    assert owned.covers(response)


def test_without_ocsp_stapling_no_response_file_and_no_timer(debian: Plan) -> None:
    assert not [c for c in debian.shell() if "ocsp" in c]
    assert not [dest for dest in debian.uploads() if "ocsp" in dest]


def test_a_certificate_rotation_with_ocsp_stapling_fetches_the_new_response_after_its_reload(tmp_path: Path) -> None:
    """`pyinfra INVENTORY tasks/tls.py`: the new bundle, its response file emptied (the one held is the old
    certificate's), the reload, then the first fetch through ober-ocsp.service: no second reload."""
    bundle = LabCa(tmp_path / "ca").server_bundle(
        "s3.lab.example", ["203.0.113.10"], ocsp_url="http://ocsp.lab.example/"
    )
    facts = node_facts(DEBIAN12, "2", "524288", "", "\n2.6.12-1+deb12u4\n")
    data = {"ober_tls_certificates": [str(bundle)], "ober_ocsp_stapling": True}
    plan = dry_run(tmp_path, facts, data, deploy_file="tasks/tls.py")
    assert plan.code == 0, plan.output
    shell = plan.shell()
    response = f"{PATHS.certs_dir}/{bundle.name}.ocsp"
    assert shell.count(RELOAD) == 1
    emptied, reload = shell.index(f": > {response}"), shell.index(RELOAD)
    first_fetch = next(i for i, c in enumerate(shell) if c.startswith("systemctl start ober-ocsp.service"))
    assert emptied < reload < first_fetch
    assert not [c for c in shell if "exabgp" in c]
