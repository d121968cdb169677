"""The whole cluster in the lab: real Heartbeat fails over through the OVH emulator, measured by the drill.

One stack for the module, in file order: deploy, drill (crash ns11111), refresh and up after the failover,
fail-back through Heartbeat's hand-over, then a drill where the crashed node comes back still holding the
address, which must be reported as a split brain. Real engine, real sshd, real Heartbeat, real mail.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.remote.conftest import lab_run
from tests.remote.test_cluster_lab import heartbeat_running, lab_stack
from tests.support.engine import REPO
from tests.support.emulator import EMULATOR, lab_api

HOSTS = ("ns11111", "ns22222")
CIDR = "203.0.113.10/32"
STATUS = f"/etc/ha.d/resource.d/ovh-failover-ip {CIDR} eth0 status"


def move_calls(since: float) -> list:
    return [c for c in lab_api("/lab/calls") if c["method"] == "POST" and c["path"].split("?")[0].endswith("/move")
            and c["epoch"] >= since]


def changed_resources(output: str, marker: str) -> set:
    """Names of the resources (remote or OVH) on lines carrying `marker`."""
    return {m.group(1) for line in output.splitlines() if marker in line
            for m in [re.search(r"dynamic/\w+:\w+ (\S+)", line)] if m}


def holders() -> list:
    return [h for h in HOSTS if lab_run(h, "sh", "-c", STATUS, check=False).stdout.strip() == "running"]


def wait_for_holder(expected: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while holders() != [expected]:
        assert time.monotonic() < deadline, f"the group is on {holders()}, expected {expected} within {seconds} s"
        time.sleep(0.5)


def heartbeat_pids() -> dict:
    return {h: lab_run(h, "cat", "/run/heartbeat.pid", check=False).stdout.strip() for h in HOSTS}


def drill(tmp_path, *args) -> tuple:
    report = tmp_path / f"drill-{time.monotonic_ns()}.json"
    proc = subprocess.run([sys.executable, "-m", "drill", "--stack", "lab", "--json", str(report), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    return proc, (json.loads(report.read_text()) if report.exists() else None)


@pytest.fixture(scope="module")
def mail_sink():
    python = str(REPO / ".venv" / "bin" / "python")
    was_up = subprocess.run([python, "-m", "lab.mail_sink", "status"], cwd=REPO, capture_output=True).returncode == 0
    started = subprocess.run([python, "-m", "lab.mail_sink", "up"], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    if not was_up:
        subprocess.run([python, "-m", "lab.mail_sink", "down"], cwd=REPO, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def stack(lab_hosts, mail_sink, tmp_path_factory):
    lab_api("/lab/reset", {})          # the seed's routing: ns11111
    stack = lab_stack(tmp_path_factory.mktemp("drill-lab"), lab_hosts)
    yield stack
    stack.pulumi("destroy", "--yes", check=False)


def test_the_cluster_deploys_and_heartbeat_places_the_group_on_the_initial_node(stack):
    stack.pulumi("up", "--yes")
    assert all(heartbeat_running(h) for h in HOSTS)
    wait_for_holder("ns11111")


LOAD_SECONDS = float(os.environ.get("OVH_HA_LOAD_SECONDS", "300"))
ALARMS = ("is dead", "Taking over", "Acquiring resource group", "Giving up", "Releasing resource group")


def test_busy_nodes_do_not_fail_over_with_the_recommended_timings(stack):
    """Both nodes healthy and busy (every core spinning, a ping flood each way on the heartbeat link) for
    LOAD_SECONDS (5 minutes unless OVH_HA_LOAD_SECONDS says otherwise): no node may declare the other dead."""
    wait_for_holder("ns11111")
    offsets = {h: len(lab_run(h, "cat", "/var/log/ha-log").stdout) for h in HOSTS}
    since = time.time()
    bound = f"timeout {LOAD_SECONDS:.0f}"
    peers = {"ns11111": "192.0.2.22", "ns22222": "192.0.2.11"}
    for host in HOSTS:
        load = (f"for i in 1 2; do nohup {bound} sh -c 'while :; do :; done' >/dev/null 2>&1 & done; "
                f"nohup {bound} ping -q -f -s 1200 {peers[host]} >/dev/null 2>&1 &")
        lab_run(host, "sh", "-c", load)
    time.sleep(LOAD_SECONDS + 3)
    for host in HOSTS:       # the load ended by itself (bounded): nothing of it is left
        assert lab_run(host, "pgrep", "-f", "ping -q -f", check=False).returncode == 1
    logs = {h: lab_run(h, "cat", "/var/log/ha-log").stdout[offsets[h]:] for h in HOSTS}
    late = {h: logs[h].count("Late heartbeat") for h in HOSTS}
    for host in HOSTS:
        alarms = [line for line in logs[host].splitlines() if any(a in line for a in ALARMS)]
        assert alarms == [], f"{host} under load: {alarms} (late heartbeats: {late})"
    assert holders() == ["ns11111"] and move_calls(since) == []
    print(f"{LOAD_SECONDS:.0f} s of load: no failover; late-heartbeat warnings per node: {late}")


def test_the_drill_fails_over_through_one_ovh_move_with_both_alerts(stack, tmp_path):
    proc, report = drill(tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and report["passed"], text
    assert (report["crashed"], report["survivor"]) == ("ns11111", "ns22222"), text
    # answered again from the other node, routed there by one move task
    assert holders() == ["ns22222"]
    assert lab_api("/lab/state")["failoverIps"][CIDR]["routedTo"] == "ns22222.ovh.net"
    assert report["moveCalls"] == 1, text
    # the alerts, naming the node that took over
    assert "mail_received" in report["moments"] and "ns22222" in report["details"]["mail_received"], text
    assert report["details"]["sms_received"].startswith("to +33600000000: ns22222 took over"), text
    # the timeline has every step, in order
    # (Heartbeat's lines are stamped when they reach the drill, the resource script's carry their own time)
    order = [report["moments"][k] for k in ("last_answer", "peer_dead", "move_requested", "move_done", "first_answer")]
    assert all(a <= b + 0.1 for a, b in zip(order, order[1:])), report["moments"]
    assert report["interruption"] > 0 and report["interruption"] < 300
    # the returning node did not take it back
    assert any("stayed on ns22222" in note for note in report["notes"]), text
    assert heartbeat_running("ns11111")
    for line in ("peer ns11111 declared dead", "OVH move task done", "first answer again", "interruption"):
        assert line in text, text


def test_after_the_failover_refresh_records_it_and_up_moves_nothing(stack):
    refresh = stack.pulumi("refresh", "--yes", "--skip-preview", "--diff")
    out = refresh.stdout + refresh.stderr
    assert "drift" not in out, out
    # only the routing changed, read from OVH: now the other node's
    updates = [line.strip() for line in out.splitlines() if line.strip().endswith(": (update)")]
    assert updates == ["~ pulumi-python:dynamic/ovh:FailoverRouting: (update)"] and "~ 1 updated" in out, out
    assert '~ routedTo    : "ns11111.ovh.net" => "ns22222.ovh.net"' in out, out
    assert '~ activeNode  : "ns11111" => "ns22222"' in out, out
    assert "OVH now routes it to ns22222.ovh.net (node ns22222; was ns11111.ovh.net)" in out, out
    since, pids = time.time(), heartbeat_pids()
    up = stack.pulumi("up", "--yes")
    out = up.stdout + up.stderr
    # up records what refresh saw and moves nothing: Heartbeat owns placement
    assert changed_resources(out, "updated") <= {"cluster-failover-ip-routing"} and " created" not in out, out
    assert "failBack is false, so `up` leaves it there" in out, out
    assert move_calls(since) == [], "up moved the failover IP"
    assert heartbeat_pids() == pids and holders() == ["ns22222"], "up touched Heartbeat"
    outputs = stack.outputs()
    assert (outputs["routedTo"], outputs["activeNode"]) == ("ns22222.ovh.net", "ns22222"), outputs
    stack.pulumi("preview", "--expect-no-changes")


def test_fail_back_goes_through_heartbeats_hand_over(stack):
    stack.pulumi("config", "set", "--path", "ovh-ha-cluster:failoverIp.failBack", "true", "--stack", stack.name)
    preview = stack.pulumi("preview", "--diff")
    plan = preview.stdout + preview.stderr
    assert "has Heartbeat hand the resource group back to ns11111.ovh.net's node (hb_takeover)" in plan, plan
    assert "asks Heartbeat on ns11111 to take it back" in plan or "take it back (hb_takeover)" in plan, plan
    since = time.time()
    up = stack.pulumi("up", "--yes")
    out = up.stdout + up.stderr
    assert "asking Heartbeat to take the resource group back (hb_takeover)" in out, out
    assert holders() == ["ns11111"]
    assert lab_api("/lab/state")["failoverIps"][CIDR]["routedTo"] == "ns11111.ovh.net"
    assert len(move_calls(since)) == 1, "one move, made by the resource script during Heartbeat's hand-over"
    log = lab_run("ns11111", "cat", "/var/log/ovh-ha/failover-ip.log").stdout
    assert "moving failover IP 203.0.113.10/32 from ns22222.ovh.net to ns11111.ovh.net" in log
    stack.pulumi("refresh", "--yes", "--skip-preview")   # sees the routing back home; up records it
    since = time.time()
    stack.pulumi("up", "--yes")
    assert move_calls(since) == []
    stack.pulumi("preview", "--expect-no-changes")
    assert stack.outputs()["activeNode"] == "ns11111"
    stack.pulumi("config", "set", "--path", "ovh-ha-cluster:failoverIp.failBack", "false", "--stack", stack.name)
    stack.pulumi("up", "--yes")


def test_a_node_returning_with_the_address_is_reported_as_a_split_brain(stack, tmp_path):
    wait_for_holder("ns11111")
    proc, report = drill(tmp_path, "--keep-stale-address")
    text = proc.stdout + proc.stderr
    try:
        assert proc.returncode == 1 and not report["passed"], text
        assert any("split brain" in p for p in report["problems"]), text
        assert "drill: FAIL" in text
    finally:
        lab_run("ns11111", "ip", "addr", "del", CIDR, "dev", "eth0", check=False)
    assert holders() == ["ns22222"]


def test_the_real_cluster_path_crashes_over_ssh_and_the_server_restores_itself(stack, lab_hosts):
    """What `make drill REAL=1` does to a server, run against a lab host over SSH: the crash is scheduled
    detached on the server, cuts its only link (and so the drill's SSH session), and the server brings itself
    back after --hold seconds. Only the prober runs in the lab's `outside`, as from the Internet."""
    from components.remote.ssh import Target
    from drill.__main__ import load_spec
    from drill.hosts import LabHosts, SshHosts
    from drill.run import Drill

    class LabProbeSsh(SshHosts):
        probe_command = LabHosts.probe_command

    wait_for_holder("ns22222")
    spec = load_spec(REPO / "Pulumi.lab.yaml", lab_hosts["sshKeyFile"])
    targets = {h["name"]: Target(node=h["name"], host=h["sshHost"], port=h["sshPort"], user=h["sshUser"],
                                 host_key=h["hostPublicKey"], key_file=lab_hosts["sshKeyFile"])
               for h in lab_hosts["hosts"]}
    hosts = LabProbeSsh(targets, CIDR, hold=5)
    lines = []
    report = Drill(spec, hosts, "lab", emulator=EMULATOR, say=lines.append).run()
    assert report.passed, (report.problems, lines, report.to_json())
    assert (report.crashed, report.survivor) == ("ns22222", "ns11111")
    assert report.moments["restored"] - report.moments["crash"] >= 5, "the server came back before its hold"
    assert holders() == ["ns11111"] and heartbeat_running("ns22222")
