"""The project's own program through the real engine: the lab stack previews; bad config stops everything."""
import re
import subprocess

import yaml

from tests.support.engine import REPO, Stack, program_copy


def test_main_command_deploys_the_lab_stack_on_the_lab():
    """`make demo`: lab up, then `pulumi up` of the lab stack (in the repository's own backend)."""
    proc = subprocess.run(["make", "-s", "demo"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lab up" in proc.stdout or "lab already up" in proc.stdout
    assert re.search(r"Resources:\n(    [+~] \d+ (created|updated)\n)*(    \d+ unchanged\n)?", proc.stdout), proc.stdout
    assert 'routedTo  : "ns11111.ovh.net"' in proc.stdout
    assert proc.stdout.count("heartbeatRunning: true") == 2, proc.stdout


def test_invalid_config_fails_before_any_resource(tmp_path):
    stack = Stack(program_copy(tmp_path / "src"), tmp_path)
    stack.init()
    config = yaml.safe_load((REPO / "Pulumi.lab.yaml").read_text())["config"]
    # the lab's secrets are encrypted for the lab's passphrase, not this stack's: leave them all out
    config = {k: v for k, v in config.items() if not (isinstance(v, dict) and "secure" in v)}
    config["ovh-ha-cluster:heartbeat"] = {"keepalive": 2, "deadtime": 3, "warntime": 1, "initdead": 6}
    config["ovh-ha-cluster:heartbeatAuthkey"] = "typed-in-plain-text"
    (stack.dir / f"Pulumi.{stack.name}.yaml").write_text(yaml.safe_dump({"config": config}))
    proc = stack.pulumi("preview", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ovh-ha-cluster:heartbeat.deadtime" in out
    assert "ovh-ha-cluster:heartbeatAuthkey" in out and "typed-in-plain-text" not in out
    assert "ovh:applicationSecret" in out
    up = stack.pulumi("up", "--yes", check=False)
    assert up.returncode != 0
    state = stack.export()
    assert "ovh-ha:" not in state, "no resource may be registered when the configuration is invalid"
