"""The VM lab end to end: `python3 -m vmlab up` (cold: builds the base image), then over SSH with the host
keys pinned from hosts.json: each VM is the Debian server it claims to be, with DRBD 8.4 and ESP in its
kernel, the packages the cluster needs, the link between the two, and no way out; `down` leaves nothing."""
import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vmlab import qemu, tools  # noqa: E402
from vmlab.layout import VMS, Layout  # noqa: E402

UP_TIMEOUT = 3600      # a cold `up` downloads and builds the base image
STATUS_UP = 0


def vmlab(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vmlab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def our_qemu_pids(layout: Layout):
    """Every live process whose command line names this lab's state directory (recorded or not)."""
    marker = str(layout.root).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if cmdline.startswith(qemu.QEMU.encode()) and marker in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def lab():
    layout = Layout()
    if os.geteuid() != 0:
        pytest.skip("the VM lab needs root: debootstrap/chroot build its base image")
    try:
        tools.ensure_tools()
    except tools.VmLabError as e:
        pytest.skip(f"qemu/debootstrap cannot be installed here: {e}")
    was_up = vmlab("status").returncode == STATUS_UP
    result = vmlab("up", timeout=UP_TIMEOUT)
    print(result.stdout)
    assert result.returncode == 0, f"vmlab up failed:\n{result.stdout}\n{result.stderr}"
    info = json.loads(layout.hosts_json.read_text())
    yield layout, info
    close_clients()
    if was_up:
        assert vmlab("up", timeout=UP_TIMEOUT).returncode == 0
    else:
        vmlab("down")


def connect(host: dict) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_type, key_data = host["hostPublicKey"].split()[:2]
    pinned = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_data))
    client.get_host_keys().add(f"[{host['sshHost']}]:{host['sshPort']}", key_type, pinned)
    client.connect(host["sshHost"], port=host["sshPort"], username=host["sshUser"],
                   key_filename=host["sshKeyFile"], look_for_keys=False, allow_agent=False, timeout=20)
    return client


_clients = {}   # one SSH connection per VM: a key exchange costs seconds on an emulated CPU


def sh(host: dict, command: str, stdin: str = None, timeout: float = 60):
    key = (host["sshPort"], host["hostPublicKey"])
    client = _clients.get(key)
    if client is None or not client.get_transport() or not client.get_transport().is_active():
        client = _clients[key] = connect(host)
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    out = chan_out.read().decode()
    err = chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out, err


def close_clients():
    while _clients:
        _clients.popitem()[1].close()


def hosts(info):
    return {h["name"]: h for h in info["hosts"]}


def test_hosts_json_matches_the_lab(lab):
    layout, info = lab
    assert [h["name"] for h in info["hosts"]] == [vm.name for vm in VMS]
    for host in info["hosts"]:
        assert host["sshHost"] == "127.0.0.1" and host["sshUser"] == "root"
        assert oct(os.stat(host["sshKeyFile"]).st_mode & 0o777) == "0o600"
        assert host["hostPublicKey"].startswith("ssh-ed25519 ")


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_hostname(lab, name):
    rc, out, _ = sh(hosts(lab[1])[name], "hostname; uname -n")
    assert rc == 0 and out.split() == [name, name]


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_drbd_84_module_loads(lab, name):
    rc, out, err = sh(hosts(lab[1])[name], "modprobe drbd && cat /proc/drbd")
    assert rc == 0, err
    assert out.startswith("version: 8.4."), out


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_esp_state_with_aes_gcm(lab, name):
    """An ESP state with rfc4106(gcm(aes)); the key is made now and goes over stdin, never argv."""
    info = hosts(lab[1])
    me = info[name]
    peer = next(h for h in info.values() if h["name"] != name)
    spi = "0x%08x" % secrets.randbits(31)
    key = "0x" + secrets.token_hex(20)   # 128-bit AES key + 32-bit salt
    selector = f"src {me['address']} dst {peer['address']} proto esp spi {spi}"
    batch = f"xfrm state add {selector} mode transport aead 'rfc4106(gcm(aes))' {key} 128\n"
    rc, _, err = sh(me, "ip -batch -", stdin=batch)
    assert rc == 0, err
    # counted on the guest, so the key (which `ip xfrm state` prints) never reaches this log
    rc, out, err = sh(me, f"ip xfrm state get {selector} | grep -c 'rfc4106(gcm(aes))'; grep -cw ^esp4 /proc/modules")
    assert (rc, out.split()) == (0, ["1", "1"]), err
    rc, _, err = sh(me, "ip -batch -", stdin=f"xfrm state delete {selector}\n")
    assert rc == 0, err
    rc, out, _ = sh(me, f"ip xfrm state list spi {spi} | wc -l")
    assert out.strip() == "0"


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_link_reaches_the_peer(lab, name):
    info = hosts(lab[1])
    peer = next(h for h in info.values() if h["name"] != name)
    rc, out, _ = sh(info[name], f"ping -c 3 -W 2 {peer['address']}")
    assert rc == 0 and " 0% packet loss" in out, out
    rc, out, _ = sh(info[name], "ip -br -4 addr show dev eth0")
    assert f"{info[name]['address']}/24" in out


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_cluster_software_installed(lab, name):
    packages = ["heartbeat", "drbd-utils", "nftables", "openssh-server", "iproute2"]
    rc, out, _ = sh(hosts(lab[1])[name], "dpkg-query -W -f '${Package} ${Status}\\n' " + " ".join(packages)
                    + "; test -x /usr/lib/drbd/drbdadm-84 && echo drbdadm-84; nft list ruleset >/dev/null "
                    "&& echo nft; systemctl is-active ssh")
    lines = out.splitlines()
    for package in packages:
        assert f"{package} install ok installed" in lines
    assert lines[-3:] == ["drbdadm-84", "nft", "active"]


@pytest.mark.parametrize("name", [vm.name for vm in VMS])
def test_guest_cannot_leave(lab, name):
    """User-mode networking is restricted: not even the machine's own loopback (10.0.2.2 -> 127.0.0.1, where
    qemu listens for this very VM's SSH forward) is reachable, and there is no default route."""
    host = hosts(lab[1])[name]
    probe = ("import socket\ns=socket.socket(); s.settimeout(5)\n"
             f"try:\n s.connect(('10.0.2.2', {host['sshPort']})); print('reached')\n"
             "except OSError as e:\n print('blocked', type(e).__name__)\n")
    rc, out, err = sh(host, "python3 -", stdin=probe)
    assert rc == 0 and out.startswith("blocked"), out + err
    rc, out, _ = sh(host, "ip route show default")
    assert out.strip() == ""


def test_down_stops_only_the_lab_and_is_idempotent(lab):
    layout, _ = lab
    assert our_qemu_pids(layout)
    close_clients()
    first = vmlab("down")
    assert first.returncode == 0 and "stopped ns11111, ns22222" in first.stdout, first.stdout + first.stderr
    assert our_qemu_pids(layout) == []
    second = vmlab("down")
    assert second.returncode == 0 and "already down" in second.stdout
    assert vmlab("status").returncode == 3
