"""node/ovh-failover-ip run as Heartbeat runs it (a program, in the node's namespace), against the emulator,
with a consumer key limited to the node role's access rules."""
import json
import shutil

import pytest

from components.ovh import make_client
from components.render import agent as agent_render
from tests.model.support import stack
from tests.node.conftest import TUTORIAL_IP
from tests.ovh.support import CIDR, IP, QUOTED, SMS_SENDER, SMS_SERVICE, count_calls

SMS = {"service": SMS_SERVICE, "sender": SMS_SENDER, "recipients": ["+33600000001", "+33600000002"]}
FAST = {"total": 5, "request": 2, "poll": 0.05, "sms": 2}


def _credentials(endpoint, keys):
    return (f"[default]\nendpoint={endpoint}\n\n[{endpoint}]\napplication_key={keys['application_key']}\n"
            f"application_secret={keys['application_secret']}\nconsumer_key={keys['consumer_key']}\n")


@pytest.fixture
def config(lab, tmp_path):
    """Files for node ns11111: its service, the API in the namespace, SMS alerts, short bounds."""
    def make(mode=0o600, **overrides):
        base = {"node": "ns11111", "service": "ns11111.ovh.net", "endpoint": lab.agent_endpoint,
                "failoverIp": CIDR, "interface": "eth0", "sms": SMS, "timeouts": FAST}
        config = {**base, **overrides}
        return lab.write_agent_files(tmp_path, config, _credentials(config["endpoint"], lab.keys), mode)
    return make


def _routed(lab, ip=CIDR):
    return lab.lab("GET", "/lab/state")["failoverIps"][ip]["routedTo"]


def test_start_moves_the_ip_then_brings_it_up_and_alerts(lab, config):
    path = config()
    assert _routed(lab) == "ns22222.ovh.net"
    started = lab.agent(path, "start")
    assert started.returncode == 0, started.stderr
    assert IP in lab.addresses()
    assert _routed(lab) == "ns11111.ovh.net"
    counts = count_calls(lab.lab("GET", "/lab/calls"))
    assert counts[f"POST /ip/{QUOTED}/move"] == 1
    jobs = lab.lab("GET", "/lab/sms")
    assert sorted(j["receiver"] for j in jobs) == SMS["recipients"]
    assert {j["sender"] for j in jobs} == {SMS_SENDER}
    assert all(j["message"].startswith(f"ns11111 took over failover IP {CIDR} at ") for j in jobs)
    assert "from ns22222.ovh.net" in jobs[0]["message"]
    assert "moving failover IP" in started.stderr and "SMS alert sent" in started.stderr
    arp = "gratuitous ARP sent" if shutil.which("arping", path="/usr/sbin:/usr/bin:/sbin:/bin") \
        else "arping is not installed"
    assert arp in started.stderr

    status = lab.agent(path, "status")
    assert (status.returncode, status.stdout.strip()) == (0, "running")
    assert lab.agent(path, "monitor").returncode == 0


def test_stop_takes_the_address_down_and_is_idempotent(lab, config):
    path = config()
    assert lab.agent(path, "start").returncode == 0
    stopped = lab.agent(path, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert IP not in lab.addresses()
    status = lab.agent(path, "status")
    assert (status.returncode, status.stdout.strip()) == (3, "stopped")
    again = lab.agent(path, "stop")
    assert again.returncode == 0, again.stderr
    # stop never talks to the API: the peer's start moves the IP
    assert _routed(lab) == "ns11111.ovh.net"


def test_start_when_already_routed_here_moves_nothing(lab, config):
    lab.lab("POST", "/lab/routing", {"ip": CIDR, "routedTo": "ns11111.ovh.net"})
    path = config()
    started = lab.agent(path, "start")
    assert started.returncode == 0, started.stderr
    assert IP in lab.addresses()
    counts = count_calls(lab.lab("GET", "/lab/calls"))
    assert counts[f"POST /ip/{QUOTED}/move"] == 0 and counts[f"GET /ip/{QUOTED}"] == 1
    assert "already routed here" in lab.lab("GET", "/lab/sms")[0]["message"]


def test_address_on_a_down_interface_does_not_count(lab, config):
    path = config()
    assert lab.agent(path, "start").returncode == 0
    lab.ns_run("ip", "link", "set", "eth0-peer", "down")  # eth0 loses its carrier
    try:
        status = lab.agent(path, "status")
        assert IP in lab.addresses()
        assert (status.returncode, status.stdout.strip()) == (3, "stopped")
    finally:
        lab.ns_run("ip", "link", "set", "eth0-peer", "up")
    lab.ns_run("ip", "link", "set", "eth0", "down")
    assert lab.agent(path, "status").stdout.strip() == "stopped"


def test_status_of_a_missing_interface(lab, config):
    status = lab.agent(config(), "status", interface="eth9")
    assert (status.returncode, status.stdout.strip()) == (3, "stopped")


def test_start_waits_for_a_pending_move(lab, config):
    lab.lab("POST", "/lab/settings", {"moveDelay": 0.5})
    peer = make_client(lab.host_url + "/1.0", lab.keys["application_key"], lab.keys["application_secret"],
                       lab.keys["consumer_key"], timeout=5)
    task = peer.post(f"/ip/{QUOTED}/move", to="ns33333.ovh.net")  # someone else's move, still pending
    started = lab.agent(config(timeouts={**FAST, "total": 10}), "start")
    assert started.returncode == 0, started.stderr
    assert f"waiting for pending move task(s) [{task['taskId']}]" in started.stderr
    assert "moving failover IP 203.0.113.10/32 from ns33333.ovh.net to ns11111.ovh.net" in started.stderr
    assert _routed(lab) == "ns11111.ovh.net"


def test_start_fails_when_the_move_task_fails(lab, config):
    lab.lab("POST", "/lab/faults", {"kind": "task_status", "status": "ovhError", "comment": "router unreachable"})
    started = lab.agent(config(), "start")
    assert started.returncode == 1
    assert "ended with status ovhError (router unreachable)" in started.stderr
    assert IP not in lab.addresses()
    assert lab.lab("GET", "/lab/sms") == []


def test_start_fails_within_its_bound_when_the_api_is_down(lab, config):
    # nothing listens on port 9 in the namespace: every connection is refused
    path = config(endpoint="http://127.0.0.1:9/1.0", timeouts={**FAST, "total": 2})
    started = lab.agent(path, "start", timeout=30)
    assert started.returncode == 1
    assert "unavailable" in started.stderr and "ConnectionRefusedError" in started.stderr
    assert IP not in lab.addresses()


def test_start_retries_through_server_errors(lab, config):
    lab.lab("POST", "/lab/faults", [{"kind": "http_error", "status": 503, "path": "/ip/*/move"},
                                    {"kind": "http_error", "status": 429, "method": "GET", "path": "/ip/*"}])
    started = lab.agent(config(), "start")
    assert started.returncode == 0, started.stderr
    assert "retrying" in started.stderr
    assert _routed(lab) == "ns11111.ovh.net"


def test_a_failed_alert_never_fails_start(lab, config):
    lab.lab("POST", "/lab/faults", {"kind": "http_error", "status": 500, "path": "/sms/*", "count": 100})
    started = lab.agent(config(), "start")
    assert started.returncode == 0, started.stderr
    assert IP in lab.addresses()
    assert "SMS alert failed (start goes on)" in started.stderr


def test_refused_credentials_fail_at_once(lab, config):
    lab.lab("POST", "/lab/faults", {"kind": "revoke_consumer_key"})
    started = lab.agent(config(), "start")
    assert started.returncode == 1
    assert "This credential does not exist" in started.stderr
    refused = [c for c in lab.lab("GET", "/lab/calls") if c["status"] == 403]
    assert len(refused) == 1


@pytest.mark.parametrize("problem, expected", [
    ({"mode": 0o644}, "have mode 0644; they must be readable by their owner only"),
    ({"service": ""}, "key service is ''"),
    ({"backend": "soapi"}, "key backend is 'soapi'"),
    ({"timeouts": {"total": -1}}, "key timeouts.total is -1"),
    ({"failoverIp": "10.9.9.9/32"}, "key failoverIp is '10.9.9.9/32' but Heartbeat asked for 203.0.113.10/32"),
])
def test_bad_configuration_is_named(lab, config, problem, expected):
    started = lab.agent(config(**problem), "start")
    assert started.returncode == 6
    assert expected in started.stderr
    assert lab.lab("GET", "/lab/calls") == []


def test_usage(lab, config):
    assert lab.agent(config(), "restart").returncode == 2
    assert lab.agent(config(), "start", ip="203.0.113.300").returncode == 2


def test_the_rendered_configuration_drives_the_agent(lab, tmp_path):
    """components/render/agent.py's files for the tutorial stack's ns11111, pointed at the emulator."""
    spec, _, _ = stack("tutorial")
    rendered = agent_render.config(spec, "ns11111")
    rendered.update(endpoint=lab.agent_endpoint, timeouts=FAST)
    creds = agent_render.credentials_file(lab.agent_endpoint, lab.tutorial_keys["application_key"],
                                          lab.tutorial_keys["application_secret"],
                                          lab.tutorial_keys["consumer_key"])
    lab.lab("POST", "/lab/routing", {"ip": TUTORIAL_IP, "routedTo": "ns22222.ovh.net"})
    path = lab.write_agent_files(tmp_path, rendered, creds)
    argv = agent_render.argv(spec, "ns11111")
    assert argv[0] == "ovh-failover-ip"
    started = lab.agent(path, "start", ip=argv[1], interface="eth0")
    assert started.returncode == 0, started.stderr
    assert "10.10.10.10" in lab.addresses()
    assert _routed(lab, TUTORIAL_IP) == "ns11111.ovh.net"
    assert json.loads(path.read_text())["credentialsFile"].endswith("ovh.conf")
