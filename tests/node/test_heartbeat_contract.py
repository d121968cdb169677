"""Heartbeat's own ResourceManager (the heartbeat package's v1 resource driver) taking and giving up a group
made of the agent, the way haresources names it. It runs in the node's namespace with a private copy of
/etc/ha.d bind-mounted over the real one; the mount lives and dies with that process's mount namespace."""
import os
import shutil
import subprocess

import pytest

from tests.node.conftest import AGENT
from tests.node.test_agent import FAST, SMS, _credentials
from tests.ovh.support import CIDR, IP

RESOURCE_MANAGER = "/usr/share/heartbeat/ResourceManager"
KEY = f"ovh-failover-ip::{CIDR}::eth0"


@pytest.fixture
def ha_dir(tmp_path):
    if not os.path.exists(RESOURCE_MANAGER) or not os.path.isdir("/etc/ha.d"):
        pytest.skip(f"Heartbeat's {RESOURCE_MANAGER} is not installed (apt-get install heartbeat)")
    if shutil.which("mount") is None:
        pytest.skip("mount(8) is needed to give ResourceManager a private /etc/ha.d")
    copy = tmp_path / "ha.d"
    shutil.copytree("/etc/ha.d", copy, symlinks=True)
    shutil.copy2(AGENT, copy / "resource.d" / "ovh-failover-ip")
    (copy / "haresources").write_text(f"ns11111 {KEY}\n")
    return copy


def _resource_manager(lab, ha_dir, config_path, *args):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OVH_HA_AGENT_CONFIG": str(config_path),
           "HA_DEBUGLOG": str(ha_dir.parent / "ha-debug.log")}
    script = 'mount --bind "$1" /etc/ha.d && shift && exec "$@"'
    return subprocess.run(["ip", "netns", "exec", lab.ns, "sh", "-c", script, "sh", str(ha_dir),
                           RESOURCE_MANAGER, *args], env=env, capture_output=True, text=True, timeout=60)


def test_resource_manager_takes_and_gives_up_the_group(lab, ha_dir, tmp_path):
    config = lab.write_agent_files(tmp_path, {"node": "ns11111", "service": "ns11111.ovh.net",
                                              "endpoint": lab.agent_endpoint, "failoverIp": CIDR, "sms": SMS,
                                              "timeouts": FAST},
                                   _credentials(lab.agent_endpoint, lab.keys))
    assert _resource_manager(lab, ha_dir, config, "status", KEY).returncode == 3

    taken = _resource_manager(lab, ha_dir, config, "takegroup", KEY)
    assert taken.returncode == 0, taken.stderr
    assert IP in lab.addresses()
    assert lab.lab("GET", "/lab/state")["failoverIps"][CIDR]["routedTo"] == "ns11111.ovh.net"
    assert _resource_manager(lab, ha_dir, config, "status", KEY).returncode == 0
    log = (tmp_path / "ha-debug.log").read_text()
    assert f"Running /etc/ha.d/resource.d/ovh-failover-ip {CIDR} eth0 start" in log

    # a second takegroup sees the resource running and does not start it again
    calls = len(lab.lab("GET", "/lab/calls"))
    assert _resource_manager(lab, ha_dir, config, "takegroup", KEY).returncode == 0
    assert len(lab.lab("GET", "/lab/calls")) == calls

    given = _resource_manager(lab, ha_dir, config, "givegroup", KEY)
    assert given.returncode == 0, given.stderr
    assert IP not in lab.addresses()
    assert _resource_manager(lab, ha_dir, config, "status", KEY).returncode == 3
