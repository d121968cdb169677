"""The remote layer against the netns lab: the lab is brought up (idempotent) for these tests."""
import json
import subprocess

import pytest

from tests.support.engine import REPO


@pytest.fixture(scope="session")
def lab_hosts():
    """hosts.json of the running lab (lab/lab.py up is idempotent: a lab already up is left as it is)."""
    proc = subprocess.run(["python3", str(REPO / "lab" / "lab.py"), "up"], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"lab up failed: {proc.stdout}{proc.stderr}")
    return json.loads((REPO / ".lab" / "hosts.json").read_text())


def lab_run(host: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(REPO / "lab" / "run"), host, *command], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{host}: {' '.join(command)} -> {proc.returncode}: {proc.stdout}{proc.stderr}")
    return proc
