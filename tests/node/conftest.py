"""A throwaway node for the agent: a network namespace with an `eth0` (one end of a veth pair whose other end
stays in the namespace, so the link has a carrier) and the OVH API emulator running inside it.

The emulator listens on every address of the namespace: the agent reaches it on the namespace's loopback, the
test reaches it over a second veth pair whose far end is in the namespace (10.254.N.2). Nothing is sent
outside addresses of this namespace. Everything is deleted afterwards; processes are stopped by PID.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from components.ovh import node_rules
from tests.ovh.support import CIDR, NODES, SMS_SENDER, SMS_SERVICE, new_keys

REPO = pathlib.Path(__file__).resolve().parents[2]
AGENT = REPO / "node" / "ovh-failover-ip"
TUTORIAL_IP = "10.10.10.10/32"


def _run(argv, check=True):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


class NodeLab:
    def __init__(self, ns, host_url, port, keys, tutorial_keys, state_dir):
        self.ns, self.host_url, self.port = ns, host_url, port
        self.keys, self.tutorial_keys, self.state_dir = keys, tutorial_keys, state_dir

    @property
    def agent_endpoint(self):
        """The API as the agent, inside the namespace, reaches it."""
        return f"http://127.0.0.1:{self.port}/1.0"

    def lab(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.host_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def ns_run(self, *argv):
        return _run(["ip", "netns", "exec", self.ns, *argv], check=False)

    def addresses(self, interface="eth0"):
        out = _run(["ip", "-n", self.ns, "-j", "addr", "show", "dev", interface]).stdout
        return {a["local"] for a in json.loads(out)[0]["addr_info"] if a["family"] == "inet"}

    def write_agent_files(self, directory, config, credentials_text, mode=0o600):
        cred = directory / "ovh.conf"
        fd = os.open(cred, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(credentials_text)
        os.chmod(cred, mode)
        config = {**config, "credentialsFile": str(cred)}
        path = directory / "failover-ip.json"
        path.write_text(json.dumps(config))
        return path

    def agent(self, config_path, action, ip=CIDR, interface="eth0", timeout=60):
        """The resource script run as Heartbeat runs it, inside the node's namespace."""
        interpreter = [] if os.path.exists("/usr/bin/python3") else [sys.executable]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OVH_HA_AGENT_CONFIG": str(config_path)}
        return subprocess.run(["ip", "netns", "exec", self.ns, *interpreter, str(AGENT), ip, interface, action],
                              env=env, capture_output=True, text=True, timeout=timeout)


def _seed(keys, tutorial_keys):
    def consumer(k, ip):
        return {k["consumer_key"]: {"applicationKey": k["application_key"], "state": "validated",
                                    "rules": node_rules(ip, SMS_SERVICE)}}
    return {
        "applications": {k["application_key"]: {"secret": k["application_secret"]} for k in (keys, tutorial_keys)},
        "consumerKeys": {**consumer(keys, CIDR), **consumer(tutorial_keys, TUTORIAL_IP)},
        "services": {name: {"ip": address} for name, address in NODES.items()},
        "failoverIps": {CIDR: {"routedTo": "ns22222.ovh.net"}, TUTORIAL_IP: {"routedTo": "ns11111.ovh.net"}},
        "sms": {SMS_SERVICE: {"senders": [SMS_SENDER], "credits": 100}},
        "settings": {"moveDelay": 0},
    }


@pytest.fixture(scope="session")
def node_lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip(f"the agent tests need root (network namespaces, ip addr); running as uid {os.geteuid()}")
    if shutil.which("ip") is None:
        pytest.skip("the agent tests need iproute2's `ip`, which is not installed")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("the agent runs with the system's /usr/bin/python3 (its shebang), which is missing here")
    pid = os.getpid()
    ns, host_if, net = f"ovhha-agent-{pid}", f"ovhapi{pid % 100000}", f"10.254.{20 + pid % 200}"
    result = _run(["ip", "netns", "add", ns], check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
    server = None
    try:
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"])
        _run(["ip", "-n", ns, "link", "set", "eth0-peer", "up"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "api0", "netns", ns])
        _run(["ip", "addr", "add", f"{net}.1/30", "dev", host_if])
        _run(["ip", "link", "set", host_if, "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{net}.2/30", "dev", "api0"])
        _run(["ip", "-n", ns, "link", "set", "api0", "up"])

        keys, tutorial_keys = new_keys(), new_keys()
        state_dir = tmp_path_factory.mktemp("emulator")
        state = state_dir / "state.json"
        state.write_text(json.dumps(_seed(keys, tutorial_keys)))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "lab.ovh_emulator",
                                   "--host", "0.0.0.0", "--port", "0", "--state-file", str(state), "--no-persist"],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = server.stdout.readline()
        if not first.startswith("listening on http://"):
            raise RuntimeError(f"the emulator did not start: {first}{server.stderr.read()}")
        port = int(first.split()[2].rsplit(":", 1)[1])
        lab = NodeLab(ns, f"http://{net}.2:{port}", port, keys, tutorial_keys, state_dir)
        for _ in range(50):  # the veth link needs a moment before it carries traffic
            try:
                lab.lab("GET", "/lab/faults")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the emulator at {lab.host_url} is unreachable from the host")
        yield lab
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        _run(["ip", "netns", "delete", ns], check=False)
        _run(["ip", "link", "delete", host_if], check=False)


@pytest.fixture
def lab(node_lab):
    """The node lab, reset: the account back to its seed, eth0 up and without addresses."""
    node_lab.lab("POST", "/lab/reset", {})
    _run(["ip", "-n", node_lab.ns, "addr", "flush", "dev", "eth0"])
    _run(["ip", "-n", node_lab.ns, "link", "set", "eth0", "up"])
    return node_lab
