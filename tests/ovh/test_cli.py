"""The command lines: the emulator as a server (`python -m lab.ovh_emulator`, its `init`), `lab/ovh`, and
`python -m components.ovh`, each run as a separate program."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.ovh.support import IP, QUOTED, SMS_SERVICE

REPO = pathlib.Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVH_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@pytest.fixture
def served_lab(tmp_path):
    """`init` a lab account, then serve it with `python -m lab.ovh_emulator`; stopped by its PID."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}/1.0"
    state, credentials = tmp_path / "state.json", tmp_path / "credentials.json"
    init = subprocess.run([sys.executable, "-m", "lab.ovh_emulator", "init", "--state-file", str(state),
                           "--credentials-file", str(credentials), "--endpoint", endpoint,
                           "--failover-ip", "203.0.113.10/32", "--service", "ns11111.ovh.net=192.0.2.11",
                           "--service", "ns22222.ovh.net=192.0.2.22", "--routed-to", "ns11111.ovh.net",
                           "--sms-service", SMS_SERVICE, "--sms-sender", "OVHHA"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=30)
    assert init.returncode == 0, init.stderr
    for path in (state, credentials):
        assert os.stat(path).st_mode & 0o777 == 0o600
    server = subprocess.Popen([sys.executable, "-m", "lab.ovh_emulator", "--port", str(port),
                               "--state-file", str(state)], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith(f"listening on http://127.0.0.1:{port}"), first + server.stderr.read()
        yield {"endpoint": endpoint, "state": state, "credentials": credentials, "server": server}
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def _lab_ovh(lab, *args, stdin=None):
    return subprocess.run([str(REPO / "lab" / "ovh"), *args], env=_env(OVH_LAB_CREDENTIALS=str(lab["credentials"])),
                          input=stdin, capture_output=True, text=True, timeout=30)


def test_lab_ovh_calls_the_served_emulator(served_lab):
    got = _lab_ovh(served_lab, "GET", f"/ip/{QUOTED}")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["routedTo"] == {"serviceName": "ns11111.ovh.net"}
    moved = _lab_ovh(served_lab, "POST", f"/ip/{QUOTED}/move", '{"to": "ns22222.ovh.net"}')
    assert moved.returncode == 0 and json.loads(moved.stdout)["status"] == "todo", moved.stderr
    sms = _lab_ovh(served_lab, "POST", f"/sms/{SMS_SERVICE}/jobs", "-",
                   stdin='{"message": "hello", "receivers": ["+33600000001"], "sender": "OVHHA"}')
    assert sms.returncode == 0, sms.stderr
    calls = _lab_ovh(served_lab, "GET", "/lab/calls")
    assert calls.returncode == 0
    recorded = [(c["method"], c["path"]) for c in json.loads(calls.stdout)]
    assert ("POST", f"/ip/{QUOTED}/move") in recorded and ("POST", f"/sms/{SMS_SERVICE}/jobs") in recorded
    assert ("GET", "/lab/calls") not in recorded
    refused = _lab_ovh(served_lab, "POST", f"/ip/{QUOTED}/move", '{"to": "nowhere.ovh.net"}')
    assert refused.returncode == 1 and "HTTP 400" in refused.stderr
    # the server writes the account back to its state file
    served_lab["server"].send_signal(signal.SIGTERM)
    assert served_lab["server"].wait(timeout=10) == 0
    saved = json.loads(served_lab["state"].read_text())
    assert saved["failoverIps"]["203.0.113.10/32"]["routedTo"] == "ns22222.ovh.net"
    assert [j["message"] for j in saved["smsJobs"]] == ["hello"]


def test_lab_ovh_usage_and_missing_credentials(tmp_path):
    assert subprocess.run([str(REPO / "lab" / "ovh"), "FETCH", "/ip"], capture_output=True,
                          timeout=30).returncode == 2
    missing = subprocess.run([str(REPO / "lab" / "ovh"), "GET", "/ip"], capture_output=True, text=True,
                             env=_env(OVH_LAB_CREDENTIALS=str(tmp_path / "none.json")), timeout=30)
    assert missing.returncode == 2 and "cannot read the lab credentials" in missing.stderr


def test_components_ovh_cli(served_lab):
    creds = json.loads(served_lab["credentials"].read_text())
    env = _env(OVH_ENDPOINT=creds["endpoint"], OVH_APPLICATION_KEY=creds["application_key"],
               OVH_APPLICATION_SECRET=creds["application_secret"], OVH_CONSUMER_KEY=creds["consumer_key"])

    def run(*args):
        return subprocess.run([sys.executable, "-m", "components.ovh", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)

    request = run("request-credential", "--role", "node", "--ip", IP, "--sms-service", SMS_SERVICE)
    assert request.returncode == 0, request.stderr
    assert "POST   /sms/sms-lb00001-1/jobs" in request.stdout
    url = next(line.split(": ", 1)[1] for line in request.stdout.splitlines() if line.startswith("validate it at"))
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.loads(response.read())["state"] == "validated"
    where = run("where", "--ip", IP)
    assert (where.returncode, where.stdout.strip()) == (0, "ns11111.ovh.net"), where.stderr
    move = run("move", "--ip", IP, "--to", "ns22222.ovh.net", "--timeout", "20")
    assert move.returncode == 0 and json.loads(move.stdout)["status"] == "done", move.stderr
    bad = run("move", "--ip", "192.0.2.250", "--to", "ns22222.ovh.net")
    assert bad.returncode == 1 and "not on this OVH account" in bad.stderr
