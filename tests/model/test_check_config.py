"""`python -m components.check_config`: exit codes, every problem in one run, secrets never printed."""
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tests.model.support import STACKS, stack_config

REPO = Path(__file__).resolve().parents[2]


def check(argument: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "components.check_config", argument], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def write_stack(tmp_path: Path, config, name: str = "test") -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def test_valid_stack_exits_0_with_a_one_line_summary():
    result = check(str(STACKS / "tutorial.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("OK: nodes ns11111 (192.168.20.20) + ns22222 (192.168.20.30), failover IP 10.10.10.10 "
                             "on ns11111, DRBD r0 on /data, IPsec rfc4106(gcm(aes)), firewall on")


def test_warnings_are_printed_and_counted():
    result = check(str(STACKS / "lab.yaml"))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert [line for line in lines if ": warning: " in line and "IPsec is off" in line]
    assert lines[-1].endswith("DRBD off, IPsec off, firewall on (2 warnings)")


def test_every_problem_is_printed_in_one_run(tmp_path):
    config = stack_config("tutorial")
    config["ovh-ha-cluster:heartbeat"] = {"keepalive": 2, "deadtime": 3, "warntime": 1}
    config["ovh-ha-cluster:nodes"][1]["address"] = "192.168.20.20"
    config["ovh-ha-cluster:drbd"]["disk"] = "sda10"
    config["ovh-ha-cluster:alerts"] = {"emails": ["x"]}
    result = check(str(write_stack(tmp_path, config)))
    assert result.returncode == 1
    out = result.stdout
    assert "the stack configuration has 4 problems:" in out
    for key in ("ovh-ha-cluster:heartbeat.deadtime", "ovh-ha-cluster:nodes[1].address",
                "ovh-ha-cluster:drbd.disk", "ovh-ha-cluster:alerts.emails[0]"):
        assert f"  - {key}: " in out


def test_plain_secrets_are_refused_and_not_printed(tmp_path):
    config = stack_config("tutorial")
    token = secrets.token_hex(20)
    config["ovh:applicationSecret"] = token
    config["ovh-ha-cluster:heartbeatAuthkey"] = f"short {token}"
    result = check(str(write_stack(tmp_path, config)))
    assert result.returncode == 1
    assert "ovh:applicationSecret: is a secret but was given in plain config (value hidden)" in result.stdout
    assert "ovh-ha-cluster:heartbeatAuthkey: is a secret but was given in plain config" in result.stdout
    assert token not in result.stdout + result.stderr


def test_encrypted_secrets_count_as_set(tmp_path):
    config = stack_config("tutorial")
    config["ovh-ha-cluster:ipsecKeys"] = {"ns11111": {"secure": "v1:placeholder"},
                                          "ns22222": {"secure": "v1:placeholder"}}
    result = check(str(write_stack(tmp_path, config)))
    assert result.returncode == 0, result.stdout


def test_a_stack_name_is_enough(tmp_path):
    write_stack(tmp_path, stack_config("lab"), name="staging")
    result = subprocess.run([sys.executable, "-m", "components.check_config", "staging"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Pulumi.staging.yaml: ")


def test_missing_file_exits_1(tmp_path):
    result = check(str(tmp_path / "Pulumi.nothing.yaml"))
    assert result.returncode == 1 and "cannot read: No such file or directory" in result.stderr


def test_broken_yaml_exits_1(tmp_path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  ovh-ha-cluster:nodes: [\n")
    result = check(str(path))
    assert result.returncode == 1 and "not valid YAML" in result.stderr


def test_empty_stack_lists_what_is_missing(tmp_path):
    path = tmp_path / "Pulumi.empty.yaml"
    path.write_text("config: {}\n")
    result = check(str(path))
    assert result.returncode == 1
    for key in ("ovh-ha-cluster:nodes", "ovh-ha-cluster:failoverIp", "ovh-ha-cluster:drbd.disk", "ovh:endpoint",
                "ovh:applicationKey", "ovh-ha-cluster:sshPrivateKey"):
        assert f"  - {key}: missing" in result.stdout


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "components.check_config"], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "usage:" in result.stderr
