"""The cluster program on the lab stack, through the real engine, against the two lab hosts over real SSH.

One stack for the module, in a throwaway backend; the tests run in file order and each leaves the cluster
converged for the next: up, no-change, drift, secrets, handshakes, faults, destroy.
"""
import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.remote.conftest import lab_run
from tests.support.engine import REPO, Stack
from tests.support.engine import lab_stack as support_lab_stack

HOSTS = ("ns11111", "ns22222")
FILES = {  # path: mode, as the cluster deploys them on each node
    "/etc/ha.d/ha.cf": "644", "/etc/ha.d/authkeys": "600", "/etc/ha.d/haresources": "644",
    "/etc/ha.d/resource.d/ovh-failover-ip": "755", "/etc/ovh-ha/failover-ip.json": "644",
    "/etc/ovh-ha/nftables.nft": "644",
}


def lab_stack(tmp: Path, lab_hosts: dict, name: str = "lab", tweak=None) -> Stack:
    return support_lab_stack(tmp, lab_hosts["sshKeyFile"], name=name, tweak=tweak)


def heartbeat_running(host: str) -> bool:
    """By its process: Debian's init script answers `status` with 0 even without a configuration."""
    return lab_run(host, "pgrep", "-f", "^heartbeat: master control process", check=False).returncode == 0


def changed_resources(output: str, marker: str) -> set:
    """Resource names on lines carrying `marker` (e.g. "[diff: +drift]")."""
    return {m.group(1) for line in output.splitlines() if marker in line
            for m in [re.search(r"dynamic/remote:\w+ (\S+)", line)] if m}


def handshakes(stack: Stack) -> dict:
    path = Path(stack.env["OVH_HA_SSH_TRACE"])
    counts = {h: 0 for h in HOSTS}
    if path.exists():
        for line in path.read_text().splitlines():
            counts[line.split()[2]] += 1
        path.unlink()
    return counts


@pytest.fixture(scope="module")
def stack(lab_hosts, tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster-lab")
    stack = lab_stack(work, lab_hosts)
    yield stack
    stack.pulumi("destroy", "--yes", check=False)


def test_up_converges_on_both_hosts(stack):
    up = stack.pulumi("up", "--yes")
    assert "error" not in up.stdout.lower(), up.stdout
    for host in HOSTS:
        for path, mode in FILES.items():
            got = lab_run(host, "stat", "-c", "%a %U:%G", path).stdout.split()
            assert got == [mode, "root:root"], f"{host}:{path} is {got}"
        assert heartbeat_running(host), host
        assert "chain input" in lab_run(host, "nft", "list", "table", "inet", "ovh_ha").stdout
        ha_cf = lab_run(host, "cat", "/etc/ha.d/ha.cf").stdout
        peer = "192.0.2.22" if host == "ns11111" else "192.0.2.11"
        assert f"ucast eth0 {peer}" in ha_cf and "keepalive 200ms" in ha_cf
    outputs = stack.outputs()
    assert {n: o["heartbeatRunning"] for n, o in outputs["nodes"].items()} == {h: True for h in HOSTS}


def test_second_up_changes_nothing(stack):
    again = stack.pulumi("up", "--yes")
    assert re.search(r"\d+ unchanged", again.stdout) and " updated" not in again.stdout \
        and " created" not in again.stdout, again.stdout
    stack.pulumi("preview", "--expect-no-changes")


def holder() -> list:
    return [h for h in HOSTS if "203.0.113.10/" in lab_run(h, "ip", "-br", "addr", "show", "eth0").stdout]


def test_an_ha_cf_change_reloads_heartbeat_and_the_group_stays_put(stack):
    for _ in range(60):                       # Heartbeat acquires the group some seconds after it starts
        if holder():
            break
        time.sleep(1)
    before = holder()
    assert len(before) == 1, f"the failover IP is held by {before}"
    offsets = {h: len(lab_run(h, "cat", "/var/log/ha-log").stdout) for h in HOSTS}
    stack.pulumi("config", "set", "--path", "ovh-ha-cluster:heartbeat.warntime", "600ms", "--stack", stack.name)
    up = stack.pulumi("up", "--yes")
    assert changed_resources(up.stdout, "updated") == {
        f"cluster-heartbeat-{h}-{what}" for h in HOSTS for what in ("ha-cf", "heartbeat")}, up.stdout
    assert holder() == before
    logs = {h: lab_run(h, "cat", "/var/log/ha-log").stdout[offsets[h]:] for h in HOSTS}
    for host in HOSTS:
        assert "to reread config files" in logs[host]   # `reload`: heartbeat -r, keeping the resources
    assert "Giving up" not in logs[before[0]] and "Taking over" not in logs[before[0]]
    stack.pulumi("preview", "--expect-no-changes")


def test_refresh_reports_exactly_the_drifted_resources_and_up_repairs_them(stack):
    lab_run("ns11111", "sh", "-c", "echo '# edited by hand' >> /etc/ha.d/ha.cf")
    lab_run("ns22222", "/etc/init.d/heartbeat", "stop")
    listing = lab_run("ns22222", "nft", "-a", "list", "table", "inet", "ovh_ha").stdout
    handle = re.search(r"tcp dport 80 accept # handle (\d+)", listing).group(1)
    lab_run("ns22222", "nft", "delete", "rule", "inet", "ovh_ha", "input", "handle", handle)

    refresh = stack.pulumi("refresh", "--yes")
    assert changed_resources(refresh.stdout, "[diff: +drift]") == {
        "cluster-heartbeat-ns11111-ha-cf", "cluster-heartbeat-ns22222-heartbeat", "cluster-firewall-ns22222-table"
    }, refresh.stdout
    plan = stack.pulumi("preview", "--diff").stdout
    assert "content changed on the server" in plan
    assert "stopped on the server, declared running" in plan
    assert "changed on the server since it was loaded" in plan

    up = stack.pulumi("up", "--yes")
    assert changed_resources(up.stdout, "[diff: -drift]") == changed_resources(refresh.stdout, "[diff: +drift]")
    assert "# edited by hand" not in lab_run("ns11111", "cat", "/etc/ha.d/ha.cf").stdout
    assert heartbeat_running("ns22222")
    assert "tcp dport 80 accept" in lab_run("ns22222", "nft", "list", "table", "inet", "ovh_ha").stdout
    stack.pulumi("preview", "--expect-no-changes")


def test_secrets_never_in_plain_text(stack):
    state = json.loads(stack.pulumi("stack", "export", "--show-secrets").stdout)
    secrets = []
    for res in state["deployment"]["resources"]:
        if res["urn"].endswith("::cluster-heartbeat-authkey"):
            value = res["outputs"]["value"]
            secrets.append(json.loads(value["plaintext"]) if isinstance(value, dict) else value)
    for key in ("ovh:applicationKey", "ovh:applicationSecret", "ovh:consumerKey"):
        secrets.append(stack.pulumi("config", "get", key, "--stack", stack.name).stdout.strip())
    private_key = Path(json.loads((REPO / ".lab" / "hosts.json").read_text())["sshKeyFile"]).read_text()
    secrets += [line for line in private_key.splitlines()[1:-1] if len(line) > 20]
    assert len(secrets) >= 5 and all(len(s) >= 16 for s in secrets[:4])

    stack.transcript.clear()
    stack.pulumi("preview", "--diff")
    stack.pulumi("refresh", "--yes", "--diff")
    stack.pulumi("up", "--yes", "--diff")
    places = {"engine output": "\n".join(stack.transcript), "stack export": stack.export()}
    for path in stack.backend.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    for host in HOSTS:
        world = lab_run(host, "sh", "-c", "find /etc/ha.d /etc/ovh-ha -type f -perm -o+r -exec cat {} +").stdout
        places[f"{host}: world-readable files"] = world
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({len(secret)} chars) shows in {where}"
    # ...while the authkey did reach the one 0600 file that needs it
    assert secrets[0] in lab_run("ns11111", "cat", "/etc/ha.d/authkeys").stdout


def test_one_ssh_handshake_per_host_per_operation(stack):
    """`up --yes` and `refresh --yes` are two engine operations each (their preview, then the real one), each
    with its own provider process; `--skip-preview` leaves one."""
    handshakes(stack)
    counts = {}
    for operation in (("preview",), ("up", "--yes"), ("refresh", "--yes"), ("refresh", "--yes", "--skip-preview")):
        stack.pulumi(*operation)
        counts[" ".join(operation)] = handshakes(stack)
    print(f"SSH handshakes per host: {counts}")
    assert counts["refresh --yes --skip-preview"] == {h: 1 for h in HOSTS}, counts
    assert counts["refresh --yes"] == {h: 2 for h in HOSTS}, counts
    for operation in ("preview", "up --yes"):   # nothing to change: diffs use the recorded facts, no login
        assert counts[operation] == {h: 0 for h in HOSTS}, counts


def _sshd_sessions(host: str) -> list:
    out = lab_run(host, "pgrep", "-f", "^sshd: root", check=False).stdout
    return [pid for pid in out.split()]


def test_a_cut_ssh_session_fails_the_run_naming_host_and_resource_then_up_converges(stack):
    lab_run("ns22222", "/etc/init.d/heartbeat", "stop")
    stack.pulumi("refresh", "--yes")
    handshakes(stack)
    env = {**stack.env, "OVH_HA_SSH_HOLD": "4"}
    cmd = [str(REPO / "engine" / "run"), "pulumi", "up", "--yes", "--non-interactive", "--color=never",
           "--stack", stack.name]
    proc = subprocess.Popen(cmd, cwd=stack.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trace = Path(stack.env["OVH_HA_SSH_TRACE"])
    killed = []
    for _ in range(200):                        # at most 20 s for the session to open
        if trace.exists() and " ns22222 " in trace.read_text():
            killed = _sshd_sessions("ns22222")
            if killed:
                lab_run("ns22222", "kill", "-9", *killed, check=False)
                break
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=300)
    assert killed, "the up never opened a session to ns22222"
    assert proc.returncode != 0, out
    assert "ns22222" in out and "cluster-heartbeat-ns22222-heartbeat" in out, out
    assert re.search(r"connection (was cut|failed)", out), out
    stack.pulumi("up", "--yes")
    assert heartbeat_running("ns22222")
    stack.pulumi("preview", "--expect-no-changes")


def test_an_unanswering_host_gives_a_clear_error_in_bounded_time(lab_hosts, tmp_path):
    """A TCP listener on loopback that never speaks SSH stands in for a server that does not answer."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()

    def point_ns22222_at_the_silent_port(config):
        config["ovh-ha-cluster:nodes"][1]["ssh"] = {"host": "127.0.0.1", "port": port}
    try:
        stack = lab_stack(tmp_path, lab_hosts, name="silent", tweak=point_ns22222_at_the_silent_port)
        proc = stack.pulumi("up", "--yes", check=False, timeout=180)
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        silent.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"ns22222 (root@127.0.0.1:{port}): cannot connect over SSH within 10 s" in out, out
    if "ns11111-host-key" in out:
        stack.pulumi("destroy", "--yes", check=False, timeout=180)


def test_destroy_removes_what_was_deployed_and_nothing_else(stack):
    data = "/var/lib/ovh-ha-test-data.img"   # /var is the host's own
    lab_run("ns11111", "sh", "-c", f"head -c 1048576 /dev/urandom > {data}")
    before = lab_run("ns11111", "sha256sum", data).stdout
    stack.pulumi("destroy", "--yes")
    for host in HOSTS:
        for path in FILES:
            assert lab_run(host, "test", "-e", path, check=False).returncode == 1, f"{host}:{path} still there"
        assert not heartbeat_running(host), host
        assert lab_run(host, "nft", "list", "table", "inet", "ovh_ha", check=False).returncode != 0
        # packages stay: other software may need them
        assert lab_run(host, "dpkg-query", "-W", "heartbeat").returncode == 0
    assert lab_run("ns11111", "sha256sum", data).stdout == before
    lab_run("ns11111", "rm", "-f", data)
