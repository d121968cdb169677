"""FailoverRouting through the real engine (engine/run pulumi) against the OVH API emulator.

The program (tests/ovh/program) is copied to a temporary directory and run with no PYTHONPATH, so its
provider must work from the pickled state alone, as it does for any program run from elsewhere."""
import json
import re
import secrets
import subprocess
import urllib.request
from pathlib import Path

import pytest

from lab.ovh_emulator import start_emulator
from tests.ovh.support import CIDR, IP, NODES, SOAPI_NIC, new_keys, seed
from tests.support.engine import REPO, RUN, Stack

PROGRAM = Path(__file__).parent / "program"
HOME, AWAY = "ns11111.ovh.net", "ns22222.ovh.net"
STATE_INPUT_KEYS = ("ip", "service", "failBack", "backend", "endpoint", "timeout")

if not (REPO / ".engine" / "bin" / "pulumi").exists():
    pytestmark = pytest.mark.skip(reason=f"no engine in {REPO / '.engine' / 'bin'}: run `make engine` "
                                         f"(engine/bootstrap) to build it")


@pytest.fixture
def keys():
    found = new_keys()
    found["rotated_consumer_key"] = secrets.token_hex(16)
    return found


@pytest.fixture
def emulator(keys):
    account = seed(keys, routed_to=AWAY)
    account["consumerKeys"][keys["rotated_consumer_key"]] = dict(account["consumerKeys"][keys["consumer_key"]])
    running = start_emulator(state=account)
    yield running
    running.stop()


def make_stack(tmp_path, emulator, keys, backend="rest", fail_back=False):
    stack = Stack(PROGRAM, tmp_path)
    stack.env.pop("PYTHONPATH", None)
    stack.init()
    stack.set_config("repo", str(REPO))
    stack.set_config("ip", IP)
    stack.set_config("service", HOME)
    stack.set_config("failBack", "true" if fail_back else "false")
    if backend == "soapi":
        stack.set_config("backend", "soapi")
        stack.set_config("ovh:endpoint", emulator.soap_url)
        stack.set_config("ovh:nic", SOAPI_NIC, secret=True)
        stack.set_config("ovh:password", keys["soapi_password"], secret=True)
        stack.pulumi("config", "set", "--path", "soapi.dedicated", HOME, "--stack", stack.name)
        for service, address in NODES.items():
            stack.pulumi("config", "set", "--path", f"soapi.addresses[\"{service}\"]", address, "--stack", stack.name)
    else:
        stack.set_config("ovh:endpoint", emulator.endpoint)
        stack.set_config("ovh:applicationKey", keys["application_key"], secret=True)
        stack.set_config("ovh:applicationSecret", keys["application_secret"], secret=True)
        stack.set_config("ovh:consumerKey", keys["consumer_key"], secret=True)
    return stack


def routed(emulator):
    return emulator.state.data["failoverIps"][CIDR]["routedTo"]


def moves(emulator):
    """The move requests the emulator received (REST and SOAP)."""
    found = []
    for call in emulator.calls():
        if call["method"] == "POST" and call["path"].endswith("/move"):
            found.append(call["body"]["to"])
        if call["path"] == "/soapi" and (call.get("body") or {}).get("operation") == "dedicatedFailoverUpdate":
            found.append(call["body"])
    return found


def move_behind_pulumis_back(emulator, service):
    """What a Heartbeat takeover (or the OVH manager) does: the emulator's lab control, over HTTP."""
    request = urllib.request.Request(f"{emulator.url}/lab/routing", method="POST",
                                     data=json.dumps({"ip": IP, "routedTo": service}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer)["routedTo"] == service


def state_resource(stack, show_secrets=False):
    """The resource as the state holds it. With show_secrets the export is read directly, outside the
    transcript that assert_no_plaintext searches."""
    if show_secrets:
        proc = subprocess.run([str(RUN), "pulumi", "stack", "export", "--show-secrets", "--stack", stack.name,
                               "--non-interactive"], cwd=stack.dir, env=stack.env, capture_output=True, text=True,
                              timeout=120, check=True)
        exported = proc.stdout
    else:
        exported = stack.export()
    found = [r for r in json.loads(exported)["deployment"]["resources"] if r["urn"].endswith("::failover-ip")]
    assert len(found) == 1
    return found[0]


def assert_no_plaintext(stack, keys):
    values = [keys["application_key"], keys["application_secret"], keys["consumer_key"],
              keys["rotated_consumer_key"], keys["soapi_password"]]
    exported = stack.export()
    for value in values:
        for text in stack.transcript:
            assert value not in text
        assert value not in exported
        for path in stack.backend.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_up_refresh_failover_failback_destroy(tmp_path, emulator, keys):
    stack = make_stack(tmp_path, emulator, keys)

    preview = stack.pulumi("preview", "--diff")
    assert "credentials: [secret]" in preview.stdout
    assert moves(emulator) == [] and routed(emulator) == AWAY, "preview must not move anything"

    # up routes the IP to the declared service and waits for the task
    up = stack.pulumi("up", "--yes", "--diff")
    assert moves(emulator) == [HOME] and routed(emulator) == HOME
    assert f"moved from {AWAY} to {HOME}" in up.stdout + up.stderr
    assert stack.outputs() == {"routedTo": HOME, "ipName": CIDR}
    resource = state_resource(stack)
    assert resource["outputs"]["credentials"].get("4dabf18193072939515e22adb298388d") is not None, \
        "credentials must be a secret in the state"
    stack.pulumi("preview", "--expect-no-changes")

    # a failover made behind Pulumi's back: refresh records where OVH routes it now, and nothing else
    before = state_resource(stack, show_secrets=True)
    move_behind_pulumis_back(emulator, AWAY)
    emulator.clear_calls()
    refresh = stack.pulumi("refresh", "--yes", "--diff")
    assert f"OVH now routes it to {AWAY} (was {HOME})" in refresh.stdout + refresh.stderr
    after = state_resource(stack, show_secrets=True)
    assert after["outputs"]["routedTo"] == AWAY
    assert after["outputs"]["routedBefore"] == HOME       # what the next plan shows as the change refresh saw
    assert {k: v for k, v in after["outputs"].items() if k not in ("routedTo", "routedBefore")} == \
           {k: v for k, v in before["outputs"].items() if k not in ("routedTo", "routedBefore")}
    seen = ("routedTo", "activeNode")   # what refresh saw goes to the inputs too, so its plan shows the failover
    assert {k: v for k, v in after["inputs"].items() if k not in seen} == \
           {k: v for k, v in before["inputs"].items() if k not in seen}
    assert after["inputs"]["routedTo"] == AWAY
    assert moves(emulator) == []

    # up does not fight Heartbeat: no move, and it says why
    up = stack.pulumi("up", "--yes", "--diff")
    assert moves(emulator) == [] and routed(emulator) == AWAY
    assert "failBack is false, so `up` leaves it there" in up.stdout + up.stderr
    assert stack.outputs()["routedTo"] == AWAY
    stack.pulumi("preview", "--expect-no-changes")

    # new credentials are recorded (secret) without moving anything
    stack.set_config("ovh:consumerKey", keys["rotated_consumer_key"], secret=True)
    up = stack.pulumi("up", "--yes", "--diff")
    assert "credentials: [secret]" in up.stdout and "~ 1 updated" in up.stdout
    assert moves(emulator) == [] and routed(emulator) == AWAY

    # failBack: the plan says it moves back, up moves it back and says why
    stack.set_config("failBack", "true")
    preview = stack.pulumi("preview", "--diff")
    assert f"+ routedTo   : \"{HOME}\"" in preview.stdout
    assert f"routed to {AWAY}; failBack is true, so `up` moves it back to {HOME}" in preview.stdout + preview.stderr
    assert moves(emulator) == []
    up = stack.pulumi("up", "--yes", "--diff")
    assert moves(emulator) == [HOME] and routed(emulator) == HOME
    assert f"moved from {AWAY} to {HOME}" in up.stdout + up.stderr and "failBack is true" in up.stdout + up.stderr
    assert stack.outputs()["routedTo"] == HOME
    stack.pulumi("preview", "--expect-no-changes")
    assert_no_plaintext(stack, keys)

    # destroy leaves the routing as it is, and says so
    emulator.clear_calls()
    destroy = stack.pulumi("destroy", "--yes")
    assert "left routed as it is" in destroy.stdout + destroy.stderr
    assert moves(emulator) == [] and routed(emulator) == HOME
    assert_no_plaintext(stack, keys)


def test_refresh_with_fail_back_shows_the_drift_and_up_repairs_it(tmp_path, emulator, keys):
    stack = make_stack(tmp_path, emulator, keys, fail_back=True)
    stack.pulumi("up", "--yes")
    assert moves(emulator) == [HOME]
    move_behind_pulumis_back(emulator, AWAY)
    emulator.clear_calls()

    refresh = stack.pulumi("refresh", "--yes", "--diff")
    assert re.search(rf'~ routedTo\s*: "{HOME}" => "{AWAY}"', refresh.stdout), refresh.stdout
    assert "~ 1 updated" in refresh.stdout
    assert moves(emulator) == []
    assert state_resource(stack)["outputs"]["routedTo"] == AWAY

    preview = stack.pulumi("preview", "--diff")
    assert "~ 1 to update" in preview.stdout and "moves it back" in preview.stdout + preview.stderr
    stack.pulumi("up", "--yes")
    assert moves(emulator) == [HOME] and routed(emulator) == HOME
    stack.pulumi("preview", "--expect-no-changes")
    assert_no_plaintext(stack, keys)


def test_refused_credentials_fail_with_the_ip_and_service_named(tmp_path, emulator, keys):
    stack = make_stack(tmp_path, emulator, keys)
    stack.set_config("ovh:consumerKey", "ck-" + secrets.token_hex(12), secret=True)
    up = stack.pulumi("up", "--yes", check=False)
    assert up.returncode != 0
    text = up.stdout + up.stderr
    assert f"failover IP {IP} (declared service {HOME})" in text
    assert "the OVH API refused the credentials or the call" in text
    assert "the consumer key does not exist" in text
    assert moves(emulator) == [] and routed(emulator) == AWAY
    refused = [c for c in emulator.calls() if c.get("errorCode")]
    assert len(refused) == 1, "a refused credential is not retried"
    assert_no_plaintext(stack, keys)


def test_move_task_failure_is_reported(tmp_path, emulator, keys):
    stack = make_stack(tmp_path, emulator, keys)
    emulator.faults.add({"kind": "task_status", "status": "ovhError", "comment": "routing backend down"},
                        emulator.state)
    up = stack.pulumi("up", "--yes", check=False)
    assert up.returncode != 0
    text = up.stdout + up.stderr
    assert f"failover IP {IP} (declared service {HOME}): routing it to {HOME} failed" in text
    assert "status ovhError" in text and "routing backend down" in text
    assert routed(emulator) == AWAY


def test_soapi_backend_routes_the_ip(tmp_path, emulator, keys):
    stack = make_stack(tmp_path, emulator, keys, backend="soapi")
    stack.pulumi("up", "--yes")
    assert routed(emulator) == HOME
    assert [m["ip"] for m in moves(emulator)] == [IP]
    assert stack.outputs()["routedTo"] == HOME
    stack.pulumi("preview", "--expect-no-changes")
    assert_no_plaintext(stack, keys)


def test_failover_ip_component_reports_the_active_node(tmp_path, emulator, keys):
    """The cluster's FailoverIp, built from the lab stack's own config: routedTo and activeNode follow OVH."""
    stack = make_stack(tmp_path, emulator, keys)
    stack.set_config("mode", "component")
    stack.set_config("stackFile", str(REPO / "Pulumi.lab.yaml"))
    stack.pulumi("up", "--yes")
    assert moves(emulator) == [HOME]
    assert stack.outputs() == {"routedTo": HOME, "activeNode": "ns11111", "address": IP}

    move_behind_pulumis_back(emulator, AWAY)
    stack.pulumi("refresh", "--yes")
    stack.pulumi("up", "--yes")
    assert stack.outputs()["activeNode"] == "ns22222" and routed(emulator) == AWAY
    assert moves(emulator) == [HOME], "the lab stack has failBack: false"
    assert_no_plaintext(stack, keys)
