"""The netns lab, brought up once per test session (as root) and checked from the machine.

The session fixture takes the lab down first (to know what the machine looked like without it), brings it up
cold, and at the end takes it down again; when the lab was already up before the session, it is brought back
up afterwards so a developer's lab survives a test run (its hosts' /etc and /var persist anyway).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "lab.py"
RUN = REPO / "lab" / "run"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.netlab import procs, topology  # noqa: E402
from lab.netlab.state import Layout, Record, state_dir  # noqa: E402


def netns_names() -> set:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def mount_table() -> set:
    """(mount point, fs type, source, root) of every mount in this (the machine's) mount namespace."""
    rows = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fields, tail = left.split(), right.split()
        rows.add((fields[4], tail[0], tail[1], fields[3]))
    return rows


def root_links() -> set:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


class MachineService:
    """A TCP service on the machine's 127.0.0.1 (a free port), answering "machine:<what it got>"."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
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
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


class LabSession:
    def __init__(self, env: dict, baseline: dict, service: MachineService):
        self.env = env
        self.baseline = baseline
        self.service = service
        self.layout = Layout(state_dir(env))
        self.cold_up_seconds = None
        self.info = None

    def lab(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(LAB), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def run(self, host: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(RUN), host, *command], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def up(self) -> subprocess.CompletedProcess:
        result = self.lab("up")
        assert result.returncode == 0, f"lab up failed:\n{result.stdout}\n{result.stderr}"
        self.info = json.loads(self.layout.hosts_json.read_text())
        return result

    def host(self, name: str) -> dict:
        return next(h for h in self.info["hosts"] if h["name"] == name)

    def record(self) -> Record:
        return Record(self.layout)

    def is_up(self) -> bool:
        record = self.record()
        return all(procs.alive(record.process(f"host:{h.name}")) for h in topology.HOSTS) \
            and procs.alive(record.process("forwarder"))

    def ssh(self, name: str, key_file: str = None) -> paramiko.SSHClient:
        """A paramiko client that trusts exactly the host key the lab published."""
        host = self.host(name)
        client = paramiko.SSHClient()
        key_type, key_b64 = host["hostPublicKey"].split()[:2]
        client.get_host_keys().add(f"[{host['sshHost']}]:{host['sshPort']}", key_type,
                                   paramiko.Ed25519Key(data=__import__("base64").b64decode(key_b64)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(host["sshHost"], port=host["sshPort"], username=host["sshUser"],
                       key_filename=key_file or host["sshKeyFile"], look_for_keys=False, allow_agent=False,
                       timeout=10, banner_timeout=10, auth_timeout=10)
        return client


def _status(env) -> int:
    return subprocess.run([sys.executable, str(LAB), "status"], env=env, capture_output=True, text=True,
                          timeout=60).returncode


@pytest.fixture(scope="session")
def lab_session():
    if os.geteuid() != 0:
        pytest.skip("tests/lab need root: the lab creates network namespaces, mounts and processes")
    missing = [tool for tool in ("ip", "nsenter", "unshare", "mount") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"tests/lab need {', '.join(missing)} (iproute2, util-linux) on the machine")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("tests/lab need /usr/bin/python3: the lab hosts run the system interpreter")
    service = MachineService()
    env = {**os.environ,
           "LAB_MACHINE_PORTS": ",".join(str(p) for p in [*topology.machine_ports(), service.port])}
    was_up = _status(os.environ) != 3
    down = subprocess.run([sys.executable, str(LAB), "down"], env=os.environ, capture_output=True, text=True,
                          timeout=120)
    assert down.returncode == 0, f"lab down before the session failed:\n{down.stdout}\n{down.stderr}"
    baseline = {"netns": netns_names(), "mounts": mount_table(), "links": root_links()}
    session = LabSession(env, baseline, service)
    started = time.monotonic()
    session.up()
    session.cold_up_seconds = time.monotonic() - started
    yield session
    try:
        session.lab("down")
        if was_up:
            subprocess.run([sys.executable, str(LAB), "up"], env=os.environ, capture_output=True, text=True,
                           timeout=300)
    finally:
        service.close()


@pytest.fixture
def lab(lab_session):
    """The session's lab, brought back up if an earlier test took it down or broke it."""
    if not lab_session.is_up():
        lab_session.up()
    return lab_session
