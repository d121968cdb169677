"""The managed xfrm set against a lab host's kernel: install, no change, drift by hand, repair, delete.

This kernel has xfrm but no ESP, AH or IPComp, so it cannot hold any SA: only policies are exercised here
(the SA half of the plan is covered by fixtures in tests/remote/plans and runs for real in the VM lab)."""
import json
import shutil

from tests.remote.conftest import lab_run
from tests.support.engine import REPO, Stack

PEER = "198.51.100.77"


def policies(host):
    return lab_run(host, "ip", "xfrm", "policy").stdout


def test_xfrm_policies_converge_drift_and_go(lab_hosts, tmp_path):
    host = next(h for h in lab_hosts["hosts"] if h["name"] == "ns22222")
    src = tmp_path / "src"
    shutil.copytree(REPO / "tests" / "remote" / "xfrm_program", src)
    shutil.copytree(REPO / "components", src / "components", ignore=shutil.ignore_patterns("__pycache__"))
    stack = Stack(src, tmp_path)
    stack.init()
    conn = {"node": host["name"], "host": host["sshHost"], "port": host["sshPort"], "user": host["sshUser"],
            "keyFile": host["sshKeyFile"]}
    stack.pulumi("config", "set", "--path", "connection", json.dumps(conn), "--stack", stack.name)
    stack.pulumi("config", "set", "local", host["address"], "--stack", stack.name)
    try:
        stack.pulumi("up", "--yes")
        listing = policies("ns22222")
        assert f"src {host['address']}/32 dst {PEER}/32" in listing and f"src {PEER}/32 dst {host['address']}/32" in listing
        stack.pulumi("preview", "--expect-no-changes")

        lab_run("ns22222", "ip", "xfrm", "policy", "delete", "src", f"{PEER}/32", "dst", f"{host['address']}/32",
                "dir", "in")
        refresh = stack.pulumi("refresh", "--yes")
        assert "[diff: +drift]" in refresh.stdout
        plan = stack.pulumi("preview", "--diff").stdout
        assert f"policy in {PEER}/32->{host['address']}/32 missing" in plan
        stack.pulumi("up", "--yes")
        assert f"src {PEER}/32 dst {host['address']}/32" in policies("ns22222")
        stack.pulumi("preview", "--expect-no-changes")
    finally:
        stack.pulumi("destroy", "--yes", check=False)
    assert PEER not in policies("ns22222")
