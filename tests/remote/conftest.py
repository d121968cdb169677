"""The remote layer against the netns lab: the lab is brought up (idempotent) for these tests."""
import subprocess

import pytest

from tests.support.engine import REPO


def emulator(action: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "lab.ovh_emulator", action], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def lab_hosts(netns_lab):
    """hosts.json of the running lab (tests/support/lab.py brings it up once per session), with the OVH API
    emulator the lab stack routes its failover IP through; the emulator is stopped again if it was not up."""
    was_up = emulator("status").returncode == 0
    started = emulator("up")
    if started.returncode != 0:
        pytest.fail(f"OVH API emulator: {started.stdout}{started.stderr}")
    yield netns_lab.info
    if not was_up:
        emulator("down")


def lab_run(host: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    # errors="replace": Heartbeat's log may hold a partial line written by a process killed mid-write
    proc = subprocess.run([str(REPO / "lab" / "run"), host, *command], capture_output=True, text=True,
                          errors="replace", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{host}: {' '.join(command)} -> {proc.returncode}: {proc.stdout}{proc.stderr}")
    return proc
