"""The netns lab, checked from the machine: its CLI, its hosts (names, private files, sshd, network), its
forwards, its repair by `up` and its removal by `down`.

The tests share the session's lab (tests/support/lab.py); the ones that take it down or kill a host bring it
back up before they end, and they come last in this file.
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paramiko
import pytest
import yaml

from lab.netlab import packages, procs, topology
from lab.netlab.control import RUN_FAILED, Lab, LabError
from tests.support.lab import REPO, STATUS_DOWN, lab_netns, mount_table, netns_names, root_links

HOSTS = [h.name for h in topology.HOSTS]
STACK_FIELDS = ("name", "address", "interface", "sshHost", "sshPort", "sshUser", "sshKeyFile", "hostPublicKey")


def other(name: str) -> str:
    return next(h for h in HOSTS if h != name)


def lab_stack_nodes() -> dict:
    config = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text())["config"]
    return {node["name"]: node for node in config["ovh-ha-cluster:nodes"]}


def host_key_served(netns_lab, via: str, address: str) -> str:
    """'type base64' of the ed25519 host key that whoever holds address:22 presents, asked from netns `via`."""
    result = netns_lab.run(via, "ssh-keyscan", "-t", "ed25519", "-T", "5", address, timeout=30)
    keys = [" ".join(line.split()[1:3]) for line in result.stdout.splitlines() if not line.startswith("#")]
    assert result.returncode == 0 and len(keys) == 1, \
        f"ssh-keyscan {address} from {via} -> {result.returncode}: {result.stdout}{result.stderr}"
    return keys[0]


def lab_processes(netns_lab) -> dict:
    """{pid: start time} of every process the lab runs: the recorded ones and all those in its namespaces."""
    record = netns_lab.record()
    found = {entry["pid"]: entry["start"] for entry in record.data["processes"].values()}
    inodes = {procs.namespace_inode(Path("/run/netns") / name) for name in lab_netns()} - {None}
    for pid in procs.pids_in_namespaces({"net": inodes}):
        start = procs.start_time(pid)
        if start is not None:
            found[pid] = start
    return found


# ------------------------------------------------------------------------------------------- up, hosts.json
def test_hosts_json_matches_the_lab_stack(netns_lab):
    """The fields Pulumi.lab.yaml and the remote layer rely on, with the stack's own values."""
    stack = lab_stack_nodes()
    info = json.loads(netns_lab.hosts_json.read_text())
    assert [h["name"] for h in info["hosts"]] == HOSTS
    known = netns_lab.known_hosts.read_text().splitlines()
    for host in info["hosts"]:
        assert set(STACK_FIELDS) <= set(host), f"{host['name']}: missing {set(STACK_FIELDS) - set(host)}"
        node = stack[host["name"]]
        assert (host["address"], host["interface"]) == (node["address"], node["interface"])
        assert (host["sshHost"], host["sshPort"]) == (node["ssh"]["host"], node["ssh"]["port"])
        assert host["sshUser"] == "root"
        assert Path(host["sshKeyFile"]) == (REPO / ".lab/ssh/id_ed25519").resolve() == netns_lab.key_file
        assert host["hostPublicKey"].startswith("ssh-ed25519 ")
        assert f"[{host['sshHost']}]:{host['sshPort']} {host['hostPublicKey']}" in known
    assert info["knownHostsFile"] == str(netns_lab.known_hosts)
    assert os.stat(netns_lab.key_file).st_mode & 0o777 == 0o600


def test_second_up_changes_nothing(netns_lab):
    before = netns_lab.record().data["processes"]
    hosts_json = netns_lab.hosts_json.read_bytes()
    result = netns_lab.up()
    assert "lab already up: nothing changed" in result.stdout, result.stdout
    assert "installing" not in result.stdout
    assert netns_lab.record().data["processes"] == before
    assert netns_lab.hosts_json.read_bytes() == hosts_json
    assert netns_lab.status() == 0


# ------------------------------------------------------------------------------------------------- hosts
@pytest.mark.parametrize("name", HOSTS)
def test_uname_is_the_tutorial_name(netns_lab, name):
    result = netns_lab.run(name, "uname", "-n")
    assert (result.returncode, result.stdout) == (0, f"{name}\n"), result.stderr


def test_each_host_has_its_own_etc_and_var(netns_lab):
    tag = uuid.uuid4().hex[:12]
    paths = [f"/etc/lab-probe-{tag}", f"/var/lib/lab-probe-{tag}"]
    try:
        for path in paths:
            wrote = netns_lab.run("ns11111", "sh", "-c", f"echo ns11111 > {path}")
            assert wrote.returncode == 0, wrote.stderr
            seen = netns_lab.run("ns11111", "cat", path)
            assert seen.stdout == "ns11111\n"
            elsewhere = netns_lab.run("ns22222", "test", "-e", path)
            assert elsewhere.returncode == 1, f"{path} written on ns11111 is visible on ns22222"
            assert not os.path.exists(path), f"{path} written on ns11111 is visible on the machine"
    finally:
        netns_lab.run("ns11111", "rm", "-f", *paths)
    # /usr is the machine's: the programs of the packages `lab up` installs are there on every host
    for program in ("/usr/sbin/sshd", "/usr/libexec/heartbeat/heartbeat", "/usr/sbin/nft", "/sbin/drbdadm"):
        assert netns_lab.run("ns22222", "test", "-x", program).returncode == 0, f"{program} missing on ns22222"


def test_lab_state_dir_is_hidden_from_the_hosts(netns_lab):
    """The client's private key lives in the state dir; a host sees an empty directory there."""
    result = netns_lab.run("ns11111", "ls", "-A", str(netns_lab.layout.root))
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------------- ssh
@pytest.mark.parametrize("name", HOSTS)
def test_ssh_key_auth_with_the_recorded_host_key(netns_lab, name):
    client = netns_lab.ssh(name)
    try:
        _, stdout, _ = client.exec_command("uname -n", timeout=10)
        assert stdout.read().decode() == f"{name}\n"
        assert stdout.channel.recv_exit_status() == 0
        presented = client.get_transport().get_remote_server_key()
        assert f"{presented.get_name()} {presented.get_base64()}" == netns_lab.host(name)["hostPublicKey"]
        with client.open_sftp() as sftp:   # the remote layer delivers secrets over SFTP
            assert sftp.stat("/etc/hostname").st_size == len(name) + 1
    finally:
        client.close()


def _fresh_key(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "not-the-lab", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def test_ssh_refuses_a_wrong_or_unknown_host_key(netns_lab, tmp_path):
    impostor = _fresh_key(tmp_path / "impostor")
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text("".join(f"[{h['sshHost']}]:{h['sshPort']} {impostor}\n" for h in netns_lab.info["hosts"]))
    with pytest.raises(paramiko.BadHostKeyException):
        netns_lab.ssh("ns11111", known_hosts=wrong)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        netns_lab.ssh("ns22222", known_hosts=empty)


def test_ssh_refuses_a_client_key_the_lab_did_not_authorize(netns_lab, tmp_path):
    _fresh_key(tmp_path / "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        netns_lab.ssh("ns11111", key_file=tmp_path / "stranger")


# ----------------------------------------------------------------------------------------------- lab/run
def test_run_returns_the_commands_status_and_output(netns_lab):
    result = netns_lab.run("ns22222", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    ok = netns_lab.run("ns11111", "pwd")
    assert (ok.returncode, ok.stdout) == (0, "/root\n")


@pytest.mark.parametrize("host, message", [
    ("ns33333", "unknown host 'ns33333'"),
    ("ns11111", "no command given"),
])
def test_run_fails_with_125_when_the_lab_cannot_run_it(netns_lab, host, message):
    command = ["true"] if host != "ns11111" else []
    result = netns_lab.run(host, *command)
    assert result.returncode == RUN_FAILED
    assert message in result.stderr


# ---------------------------------------------------------------------------------------------- network
@pytest.mark.parametrize("name", HOSTS)
def test_hosts_reach_each_other(netns_lab, name):
    peer = topology.host(other(name))
    ping = netns_lab.run(name, "ping", "-c", "1", "-W", "3", peer.address)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert host_key_served(netns_lab, name, peer.address) == netns_lab.host(peer.name)["hostPublicKey"]


@pytest.fixture
def failover_ip(netns_lab):
    """A failover IP on no host yet; afterwards removed from both hosts and routed on-link again."""
    address = "203.0.113.77"
    yield address
    for name in HOSTS:
        netns_lab.run(name, "ip", "addr", "del", f"{address}/32", "dev", topology.HOST_INTERFACE)
    netns_lab.lab("route", address, "on-link")


@pytest.mark.parametrize("routing", ["routed", "on-link"])
def test_outside_reaches_the_failover_ip_on_whichever_host_holds_it(netns_lab, failover_ip, routing):
    """OVH routes a failover IP to a server's main address (`lab route IP HOST`); on-link, the holder's ARP
    answer decides. Either way the client outside reaches the host that holds the IP, and follows it."""
    for holder in ("ns22222", "ns11111"):
        for name in HOSTS:
            netns_lab.run(name, "ip", "addr", "del", f"{failover_ip}/32", "dev", topology.HOST_INTERFACE)
        added = netns_lab.run(holder, "ip", "addr", "add", f"{failover_ip}/32", "dev", topology.HOST_INTERFACE)
        assert added.returncode == 0, added.stderr
        via = holder if routing == "routed" else "on-link"
        routed = netns_lab.lab("route", failover_ip, via)
        assert routed.returncode == 0, routed.stderr
        if routing == "on-link":   # the cached ARP entry of the previous holder expires (or Heartbeat's
            netns_lab.run(topology.OUTSIDE, "ip", "neigh", "flush", "to", failover_ip)   # gratuitous ARP)
        assert host_key_served(netns_lab, topology.OUTSIDE, failover_ip) == netns_lab.host(holder)["hostPublicKey"]


def test_route_rejects_bad_input(netns_lab):
    outside = netns_lab.lab("route", "198.51.100.7", "ns11111")
    assert outside.returncode == 1 and "outside the lab's failover network 203.0.113.0/24" in outside.stderr
    unknown = netns_lab.lab("route", "203.0.113.7", "ns9")
    assert unknown.returncode == 1 and "unknown target 'ns9'" in unknown.stderr


class MachineListener:
    """A TCP service on the machine's 127.0.0.1:PORT answering b"machine:" + what it received."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.sendall(b"machine:" + conn.recv(256))
                except OSError:
                    pass

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


CLIENT = ("import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5); "
          "s.settimeout(5); s.sendall(sys.argv[2].encode()); print(s.recv(256).decode())")


def test_hosts_reach_the_machines_loopback_services(netns_lab):
    port = 18080
    if port not in topology.machine_ports(netns_lab.env):
        pytest.skip(f"LAB_MACHINE_PORTS={netns_lab.env.get('LAB_MACHINE_PORTS')!r} does not forward {port}")
    try:
        listener = MachineListener(port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        return _through_the_emulator(netns_lab, port)
    try:
        for name in HOSTS:
            result = netns_lab.run(name, "python3", "-c", CLIENT, str(port), f"hello from {name}")
            assert (result.returncode, result.stdout) == (0, f"machine:hello from {name}\n"), result.stderr
    finally:
        listener.close()


HTTP_GET = ("import sys, urllib.request; "
            "print(urllib.request.urlopen('http://127.0.0.1:%s/1.0/auth/time' % sys.argv[1], timeout=5).read().decode())")


def _through_the_emulator(netns_lab, port):
    """The port is taken on the machine: when it is the lab's OVH emulator (as after `make lab-up`), its
    `/auth/time` must answer the hosts too, through the forwarder; anything else there, and we cannot tell."""
    here = subprocess.run([sys.executable, "-c", HTTP_GET, str(port)], capture_output=True, text=True, timeout=30)
    if here.returncode != 0 or not here.stdout.strip().isdigit():
        pytest.skip(f"127.0.0.1:{port} is in use on the machine by something other than the lab's OVH emulator; "
                    "the forward test needs to listen there itself")
    for name in HOSTS:
        result = netns_lab.run(name, "python3", "-c", HTTP_GET, str(port))
        assert result.returncode == 0 and result.stdout.strip().isdigit(), (name, result.stdout, result.stderr)
        assert abs(int(result.stdout) - int(here.stdout)) < 60


# ------------------------------------------------------------------------------------------------ packages
def test_packages_already_installed_means_nothing_to_do(netns_lab):
    said = []
    assert packages.missing_packages() == []
    assert packages.ensure(said.append) == []
    assert said == []
    assert {"openssh-server", "iproute2", "nftables", "drbd-utils", "heartbeat"} <= set(packages.REQUIRED)


def _policy_state():
    return packages.POLICY.read_bytes() if packages.POLICY.exists() else None


def test_a_failed_install_is_a_clear_lab_error(netns_lab, monkeypatch):
    """A package apt cannot find: `lab up` stops before touching the lab, naming the package and apt's error."""
    policy = _policy_state()
    before = netns_lab.record().data
    monkeypatch.setitem(packages.REQUIRED, "ovh-ha-lab-no-such-package", "a package no mirror has")
    with pytest.raises(LabError, match=r"apt-get install ovh-ha-lab-no-such-package failed .*"
                                       r"Unable to locate package ovh-ha-lab-no-such-package"):
        Lab(netns_lab.layout, say=lambda _line: None).up()
    assert _policy_state() == policy
    assert netns_lab.record().data == before


def test_no_apt_get_is_a_clear_lab_error(netns_lab, monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg-query").symlink_to("/usr/bin/dpkg-query")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setitem(packages.REQUIRED, "ovh-ha-lab-no-such-package", "a package no mirror has")
    with pytest.raises(LabError, match="no apt-get in PATH"):
        Lab(netns_lab.layout, say=lambda _line: None).up()


# ----------------------------------------------------------------------- repair and removal (keep these last)
def _wait_gone(entry: dict, what: str) -> None:
    for _ in range(100):
        if not procs.alive(entry):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} (pid {entry['pid']}) still runs 5 s after SIGKILL")


def test_up_repairs_a_host_whose_init_was_killed(netns_lab):
    keep = netns_lab.record().process("host:ns11111")
    victim = netns_lab.record().process("host:ns22222")
    marker = f"/etc/lab-persist-{uuid.uuid4().hex[:12]}"
    assert netns_lab.run("ns22222", "touch", marker).returncode == 0
    try:
        os.kill(victim["pid"], signal.SIGKILL)
        _wait_gone(victim, "ns22222's init")
        dead = netns_lab.run("ns22222", "true")
        assert dead.returncode == RUN_FAILED and "is not running" in dead.stderr
        assert netns_lab.status() == 1
        repaired = netns_lab.up()
        assert "started ns22222" in repaired.stdout or "ns22222: booted" in repaired.stdout, repaired.stdout
        assert netns_lab.record().process("host:ns11111") == keep
        assert netns_lab.record().process("host:ns22222") != victim
        assert netns_lab.run("ns22222", "uname", "-n").stdout == "ns22222\n"
        assert netns_lab.run("ns22222", "test", "-e", marker).returncode == 0, "/etc did not survive the reboot"
        client = netns_lab.ssh("ns22222")   # same host key as before the crash
        client.close()
    finally:
        netns_lab.ensure_up()
        netns_lab.run("ns22222", "rm", "-f", marker)


def describe(pids) -> list:
    rows = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            argv = "?"
        rows.append(f"{pid} [{procs.state(pid)}, parent {procs.parent(pid)}] {argv.strip()}")
    return rows


def _relevant(rows: set) -> set:
    """Mounts minus other tools' named network namespaces (other tests may add theirs meanwhile)."""
    lab_points = {f"/run/netns/{name}" for name in lab_netns()}
    return {row for row in rows if not row[0].startswith("/run/netns/") or row[0] in lab_points}


def test_down_removes_everything_it_made_and_is_idempotent(netns_lab):
    baseline = netns_lab.baseline
    made = lab_processes(netns_lab)
    assert len(made) >= 7   # two inits, two unshare wrappers, two sshd, the forwarder
    try:
        down = netns_lab.lab("down", timeout=120)
        assert down.returncode == 0, down.stderr
        assert "deleted network namespace outside" in down.stdout
        assert not netns_names() & set(lab_netns())
        assert netns_names() - baseline["netns"] <= {n for n in netns_names() if n not in lab_netns()}
        assert _relevant(mount_table()) == _relevant(baseline["mounts"])
        assert root_links() == baseline["links"]
        # a zombie is dead: its parent (the machine's PID 1 for the reparented unshare wrappers) reaps it
        survivors = [pid for pid, start in made.items() if procs.alive({"pid": pid, "start": start})]
        assert survivors == [], f"processes of the lab still running after down: {describe(survivors)}"
        assert not netns_lab.hosts_json.exists()
        for host in topology.HOSTS:
            with pytest.raises(OSError):
                socket.create_connection((topology.SSH_LISTEN, host.ssh_port), timeout=2).close()
        assert netns_lab.status() == STATUS_DOWN
        for name in ("ns11111", topology.OUTSIDE):
            result = netns_lab.run(name, "true")
            assert result.returncode == RUN_FAILED and "lab/lab.py up" in result.stderr, result.stderr
        again = netns_lab.lab("down", timeout=120)
        assert (again.returncode, again.stdout.strip()) == (0, "lab already down: nothing to do")
    finally:
        netns_lab.ensure_up()
    assert netns_lab.status() == 0
