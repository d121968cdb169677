"""The netns lab (lab/lab.py) as one session fixture, shared by every test folder that needs the two hosts.

tests/conftest.py imports `netns_lab` from here, so tests/lab, tests/node, tests/remote... all get the same
lab, brought up once per session. The fixture first takes the lab down (the lab's /etc and /var persist, like
disks) to record what the machine looks like without it, then brings it up cold. At the end of the session
the lab is left as it was found: up if it was up (a developer's lab survives a test run), down otherwise.
A test that takes the lab down or breaks a host brings it back up (LabSession.ensure_up) before it ends.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import paramiko
import pytest

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "lab.py"
RUN = REPO / "lab" / "run"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab.netlab import procs, topology  # noqa: E402
from lab.netlab.control import foreign_message  # noqa: E402
from lab.netlab.network import NETNS_DIR, Network, lab_netns  # noqa: E402
from lab.netlab.state import Layout, Record, state_dir  # noqa: E402

STATUS_DOWN = 3   # `lab/lab.py status` when nothing of the lab is up


def netns_names() -> set:
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def mount_table() -> set:
    """(mount point, fs type, source, root) of every mount in the machine's mount namespace."""
    rows = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fields, tail = left.split(), right.split()
        rows.add((fields[4], tail[0], tail[1], fields[3]))
    return rows


def root_links() -> set:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return {link["ifname"] for link in json.loads(out)}


def snapshot() -> dict:
    return {"netns": netns_names(), "mounts": mount_table(), "links": root_links()}


class LabSession:
    """What `netns_lab` yields: the lab's CLI, its hosts.json and its SSH material."""

    def __init__(self, env: Dict[str, str], baseline: dict):
        self.env = env
        self.baseline = baseline          # snapshot() of the machine with the lab down
        self.layout = Layout(state_dir(env))
        self.hosts_json = self.layout.hosts_json
        self.key_file = self.layout.client_key
        self.known_hosts = self.layout.known_hosts
        self.ssh_config = self.layout.ssh_config
        self.info: Optional[dict] = None  # hosts.json as read after the last up

    # ------------------------------------------------------------------ CLI
    def lab(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(LAB), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def run(self, host: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """lab/run HOST COMMAND...: the command's exit status and output (125: the lab failed)."""
        return subprocess.run([str(RUN), host, *command], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def up(self) -> subprocess.CompletedProcess:
        result = self.lab("up")
        assert result.returncode == 0, f"lab up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        self.info = json.loads(self.hosts_json.read_text())
        return result

    def ensure_up(self) -> None:
        """Bring the lab back up when a test took it down or broke a host."""
        if not self.is_up() or not self.hosts_json.exists():
            self.up()

    def status(self) -> int:
        return self.lab("status", timeout=60).returncode

    # ---------------------------------------------------------------- facts
    def record(self) -> Record:
        return Record(self.layout)

    def is_up(self) -> bool:
        record = self.record()
        return all(procs.alive(record.process(f"host:{h.name}")) for h in topology.HOSTS) \
            and procs.alive(record.process("forwarder"))

    def host(self, name: str) -> dict:
        return next(h for h in self.info["hosts"] if h["name"] == name)

    def ssh(self, name: str, key_file: Optional[Path] = None, known_hosts: Optional[Path] = None,
            timeout: float = 10) -> paramiko.SSHClient:
        """A paramiko client that accepts only the host key recorded in the lab's known_hosts."""
        host = self.host(name)
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts or self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(host["sshHost"], port=host["sshPort"], username=host["sshUser"],
                           key_filename=str(key_file or host["sshKeyFile"]), look_for_keys=False,
                           allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
        except Exception:
            client.close()
            raise
        return client


def _skip_reason() -> Optional[str]:
    if os.geteuid() != 0:
        return (f"the netns lab needs root (network namespaces, mounts, packages); running as uid "
                f"{os.geteuid()}")
    missing = [tool for tool in ("ip", "nsenter", "unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return f"the netns lab needs {', '.join(missing)} (iproute2, util-linux), missing on this machine"
    if not os.path.exists("/usr/bin/python3"):
        return "the netns lab needs /usr/bin/python3: the hosts' init and the forwarder run the system Python"
    foreign = Network(Record(Layout(state_dir())), lambda _line: None).foreign_namespaces()
    if foreign:
        return foreign_message(foreign, state_dir())
    return None


@pytest.fixture(scope="session")
def netns_lab():
    """The two-host lab, up. Yields a LabSession: .info (hosts.json), .key_file, .known_hosts, .ssh_config,
    .run(host, *cmd), .ssh(name), .lab(*args), .ensure_up(), .baseline (the machine without the lab)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ)
    was_up = subprocess.run([sys.executable, str(LAB), "status"], env=env, capture_output=True, text=True,
                            timeout=60).returncode != STATUS_DOWN
    down = subprocess.run([sys.executable, str(LAB), "down"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert down.returncode == 0, f"lab down before the session failed:\n{down.stdout}\n{down.stderr}"
    session = LabSession(env, snapshot())
    session.up()
    yield session
    if was_up:
        session.ensure_up()
    else:
        session.lab("down", timeout=120)


__all__ = ["netns_lab", "LabSession", "snapshot", "lab_netns", "STATUS_DOWN"]
