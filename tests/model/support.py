"""Shared helpers of the model tests: stack fixtures with secrets generated at test time, netns handling."""
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Mapping, Set, Tuple

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.check_config import stack_values
from components.spec import Concealed, ClusterSpec, parse_config, ipsec_generated_key_length

HERE = Path(__file__).parent
STACKS = HERE / "stacks"
GOLDEN = HERE / "golden"
INVALID = HERE / "invalid"


def stack_config(name: str) -> Dict[str, Any]:
    """The `config:` section of tests/model/stacks/<name>.yaml."""
    return yaml.safe_load((STACKS / f"{name}.yaml").read_text())["config"]


def concealed_values(config: Mapping[str, Any]) -> Tuple[Dict[str, Any], Set[str]]:
    values, secret_keys, problems = stack_values(config)
    assert not problems, problems
    return values, secret_keys


def ssh_private_key(passphrase: bytes = b"") -> str:
    """A fresh ed25519 key in OpenSSH format, optionally passphrase-protected."""
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             encryption).decode()


def reveal(values: Mapping[str, Any], spec: ClusterSpec) -> Dict[str, Any]:
    """Replace every concealed secret with a value generated now, as Pulumi would decrypt it."""
    out = dict(values)
    for key, value in values.items():
        if key == "ovh-ha-cluster:sshPrivateKey" and isinstance(value, Concealed):
            out[key] = ssh_private_key()
        elif key == "ovh-ha-cluster:ipsecKeys":
            length = ipsec_generated_key_length(spec.ipsec)
            out[key] = {node: secrets.token_hex(length) for node in value}
        elif isinstance(value, Concealed):
            out[key] = secrets.token_hex(32)
    return out


def stack(name: str) -> Tuple[ClusterSpec, Dict[str, Any], Set[str]]:
    """(spec, values with generated secrets, secret keys) of a fixture stack."""
    values, secret_keys = concealed_values(stack_config(name))
    spec = parse_config(values, secret_keys)
    revealed = reveal(values, spec)
    assert parse_config(revealed, secret_keys) == spec
    return spec, revealed, secret_keys


def require_root(what: str) -> None:
    import pytest
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (network namespaces); running as uid {os.geteuid()}")
    if shutil.which("ip") is None:
        pytest.skip(f"{what} needs iproute2's `ip`, which is not installed")


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    """A bounded run: every tool here answers in well under a second."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)
