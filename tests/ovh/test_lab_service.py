"""`python -m lab.ovh_emulator up|down|status`: the lab's OVH API, seeded from the lab stack, in a root of
its own (a copy of the stack files, the repository's engine and code linked in, a free port, its own
Pulumi backend) so the real lab is never touched."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.ovh import make_client
from lab.ovh_emulator import start_emulator
from lab.netlab.procs import alive, start_time
from tests.support.engine import REPO

IP_PATH = "/ip/203.0.113.10%2F32"

if not (REPO / ".engine" / "bin" / "pulumi").exists():
    pytestmark = pytest.mark.skip(reason="no engine in .engine/bin (`make engine`): `up` decrypts the lab "
                                         "stack's credentials with it")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Root(type(Path())):
    """The temporary root, with the endpoint its stack file names and the environment to run in."""
    endpoint: str
    env: dict


@pytest.fixture
def root(tmp_path):
    root = Root(tmp_path / "repo")
    root.mkdir()
    for name in ("engine", ".engine", ".venv", "components", "lab"):
        (root / name).symlink_to(REPO / name)
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    port = free_port()
    text = (REPO / "Pulumi.lab.yaml").read_text()
    assert "http://127.0.0.1:18080/1.0" in text
    (root / "Pulumi.lab.yaml").write_text(text.replace("127.0.0.1:18080", f"127.0.0.1:{port}"))
    root.endpoint = f"http://127.0.0.1:{port}/1.0"
    backend = tmp_path / "state"
    backend.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVH_", "PULUMI_CONFIG_PASSPHRASE"))}
    env.update(PULUMI_BACKEND_URL=f"file://{backend}", PYTHONPATH=str(REPO))
    root.env = env
    yield root
    service(root, "down")


def service(root, *args):
    return subprocess.run([sys.executable, "-m", "lab.ovh_emulator", *args, "--root", str(root)], cwd=REPO,
                          env=root.env, capture_output=True, text=True, timeout=120)


def stack_secret(root, key):
    """Decrypted the other way round (`pulumi config get`), to compare with what `up` seeded."""
    proc = subprocess.run([str(REPO / "engine" / "run"), "pulumi", "config", "get", key, "--stack", "lab",
                           "--non-interactive"], cwd=root,
                          env={**root.env, "PULUMI_CONFIG_PASSPHRASE_FILE": str(REPO / "lab" / "passphrase")},
                          capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout.strip()


def client_from(credentials_file):
    creds = json.loads(Path(credentials_file).read_text())
    return make_client(creds["endpoint"], creds["application_key"], creds["application_secret"],
                       creds["consumer_key"], timeout=5)


def agent_client(conf):
    import configparser
    ini = configparser.ConfigParser()
    ini.read(conf)
    endpoint = ini["default"]["endpoint"]
    section = ini[endpoint]
    return make_client(endpoint, section["application_key"], section["application_secret"],
                       section["consumer_key"], timeout=5), section["consumer_key"]


def test_up_is_idempotent_seeds_the_lab_stack_and_down_stops_only_its_process(root):
    first = service(root, "up")
    assert first.returncode == 0, first.stderr
    record = json.loads((root / ".lab/ovh/emulator.json").read_text())
    assert start_time(record["pid"]) == record["startTime"]
    assert service(root, "status").returncode == 0

    again = service(root, "up")
    assert again.returncode == 0 and "already running" in again.stdout
    assert json.loads((root / ".lab/ovh/emulator.json").read_text())["pid"] == record["pid"]

    # files: private, and the credentials are exactly the stack's
    folder = root / ".lab" / "ovh"
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("credentials.json", "agent-ovh.conf", "state.json", "emulator.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    creds = json.loads((folder / "credentials.json").read_text())
    assert creds["endpoint"] == root.endpoint
    assert creds["application_key"] == stack_secret(root, "ovh:applicationKey")
    assert creds["application_secret"] == stack_secret(root, "ovh:applicationSecret")
    assert creds["consumer_key"] == stack_secret(root, "ovh:consumerKey")
    for value in (creds["application_secret"], creds["consumer_key"]):
        assert value not in first.stdout + first.stderr

    # the account is the lab stack's, reached with the stack's credentials through python-ovh
    operator = client_from(folder / "credentials.json")
    assert operator.get(IP_PATH)["routedTo"]["serviceName"] == "ns11111.ovh.net"
    assert operator.get("/ip", ip="203.0.113.10/32", type="failover") == ["203.0.113.10/32"]

    # the node agent has its own key, limited to the node's calls
    agent, agent_key = agent_client(folder / "agent-ovh.conf")
    assert agent_key != creds["consumer_key"]
    assert agent.get(IP_PATH)["routedTo"]["serviceName"] == "ns11111.ovh.net"
    agent.post("/sms/sms-lb00001-1/jobs", message="lab check", receivers=["+33600000000"], sender="OVHHA",
               noStopClause=True, priority="high", senderForResponse=False)
    from ovh.exceptions import NotGrantedCall
    with pytest.raises(NotGrantedCall):
        agent.get("/ip", ip="203.0.113.10/32", type="failover")
    with pytest.raises(NotGrantedCall):
        operator.post("/sms/sms-lb00001-1/jobs", message="x", receivers=["+33600000000"])

    # a move survives down/up (the account is kept); the agent key too
    task = operator.post(IP_PATH + "/move", to="ns22222.ovh.net")
    assert operator.get(f"{IP_PATH}/task/{task['taskId']}")["status"] == "done"
    down = service(root, "down")
    assert down.returncode == 0 and f"stopped (pid {record['pid']})" in down.stdout
    # dead (a zombie for a moment, until PID 1 reaps it: it was started by the `up` process, now gone)
    assert not alive({"pid": record["pid"], "start": record["startTime"]})
    assert service(root, "status").returncode == 3
    assert "not running" in service(root, "down").stdout
    assert service(root, "up").returncode == 0
    assert operator.get(IP_PATH)["routedTo"]["serviceName"] == "ns22222.ovh.net"
    assert agent_client(folder / "agent-ovh.conf")[1] == agent_key

    # --fresh starts from the seed again
    assert service(root, "up", "--fresh").returncode == 0
    assert operator.get(IP_PATH)["routedTo"]["serviceName"] == "ns11111.ovh.net"


def test_down_never_kills_a_process_that_reused_the_recorded_pid(root):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        folder = root / ".lab" / "ovh"
        folder.mkdir(parents=True)
        (folder / "emulator.json").write_text(json.dumps({"pid": stranger.pid, "startTime": 1,
                                                          "url": root.endpoint, "started": "then"}))
        down = service(root, "down")
        assert down.returncode == 0 and "nothing killed" in down.stdout
        assert stranger.poll() is None
        assert service(root, "status").returncode == 3
    finally:
        os.kill(stranger.pid, signal.SIGTERM)
        stranger.wait(timeout=10)


def test_up_refuses_a_port_held_by_another_server(root):
    port = int(root.endpoint.rsplit(":", 1)[1].split("/")[0])
    other = start_emulator(state={}, port=port)
    try:
        up = service(root, "up")
        assert up.returncode == 1
        assert f"something else already answers at {root.endpoint}" in up.stderr
        assert not (root / ".lab" / "ovh" / "emulator.json").exists()
    finally:
        other.stop()


def test_up_names_the_missing_secret(root):
    text = (root / "Pulumi.lab.yaml").read_text()
    lines = text.splitlines()
    # drop ovh:consumerKey and its `secure:` line
    index = next(i for i, line in enumerate(lines) if line.strip() == "ovh:consumerKey:")
    del lines[index:index + 2]
    (root / "Pulumi.lab.yaml").write_text("\n".join(lines) + "\n")
    up = service(root, "up")
    assert up.returncode == 1 and "ovh:consumerKey" in up.stderr
