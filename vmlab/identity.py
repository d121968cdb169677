"""Each VM's identity: hostname, SSH host key, the machine's client key, addresses. Keys are generated once
on the machine (so the host keys are known before the VMs boot) and handed to each guest as a tar through
qemu's fw_cfg; the tar holds a private key, so it lives 0600 in a 0700 directory."""
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Dict, List

from lab.netlab import hostmail

from .layout import LINK_INTERFACE, LINK_PREFIX, USER_ADDRESS, USER_INTERFACE, VMS, Layout, VmSpec
from .tools import run

KEYGEN_TIMEOUT = 30


def private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def ensure_key(path: Path, comment: str) -> bool:
    """An ed25519 key pair at path (0600) unless one is there; True when it was made."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return False
    for stale in (path, path.with_suffix(".pub")):
        if stale.exists():
            stale.unlink()
    private_dir(path.parent)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], KEYGEN_TIMEOUT,
        f"generating {path}")
    os.chmod(path, 0o600)
    return True


def ensure_keys(layout: Layout) -> List[str]:
    made = []
    if ensure_key(layout.client_key, "vmlab-client"):
        made.append(str(layout.client_key))
    for vm in VMS:
        if ensure_key(layout.host_key(vm.name), f"root@{vm.name}"):
            made.append(str(layout.host_key(vm.name)))
    return made


def public_key(path: Path) -> str:
    """'type base64' without the comment: what known_hosts and hosts.json pin."""
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def guest_files(layout: Layout, vm: VmSpec) -> Dict[str, tuple]:
    """path in the guest -> (mode, bytes)."""
    hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" + "".join(
        f"{other.address} {other.name}\n" for other in VMS)
    link = (f"[Match]\nMACAddress={vm.link_mac}\n\n[Link]\nRequiredForOnline=no\n\n"
            f"[Network]\nAddress={vm.address}/{LINK_PREFIX}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    user = (f"[Match]\nMACAddress={vm.user_mac}\n\n[Link]\nRequiredForOnline=no\n\n"
            f"[Network]\nAddress={USER_ADDRESS}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    return {
        "etc/hostname": (0o644, f"{vm.name}\n".encode()),
        "etc/hosts": (0o644, hosts.encode()),
        "etc/ssh/ssh_host_ed25519_key": (0o600, layout.host_key(vm.name).read_bytes()),
        "etc/ssh/ssh_host_ed25519_key.pub": (0o644, layout.host_key(vm.name).with_suffix(".pub").read_bytes()),
        "root/.ssh/authorized_keys": (0o600, layout.client_key.with_suffix(".pub").read_bytes()),
        f"etc/systemd/network/10-{LINK_INTERFACE}-link.network": (0o644, link.encode()),
        f"etc/systemd/network/20-{USER_INTERFACE}-user.network": (0o644, user.encode()),
        # mail goes to the lab's mail sink on the guest's 127.0.0.1:2525 (vmlab-services.service), named per VM
        "etc/msmtprc": (0o644, hostmail.msmtprc(vm.name).encode()),
    }


def write_identity_tar(layout: Layout, vm: VmSpec, dest: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        ssh_dir = tarfile.TarInfo("root/.ssh")
        ssh_dir.type, ssh_dir.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(ssh_dir)
        for path, (mode, data) in guest_files(layout, vm).items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.chmod(dest, 0o600)


def hosts_info(layout: Layout) -> dict:
    hosts = [{
        "name": vm.name, "address": vm.address, "interface": LINK_INTERFACE,
        "sshHost": "127.0.0.1", "sshPort": vm.ssh_port, "sshUser": "root",
        "sshKeyFile": str(layout.client_key), "hostPublicKey": public_key(layout.host_key(vm.name)),
        "userNetAddress": USER_ADDRESS, "userNetInterface": USER_INTERFACE,
    } for vm in VMS]
    return {"lab": "ovh-ha-cluster VM lab", "stateDir": str(layout.root), "network": f"192.0.2.0/{LINK_PREFIX}",
            "sshKeyFile": str(layout.client_key), "knownHostsFile": str(layout.known_hosts),
            "sshConfigFile": str(layout.ssh_config), "hosts": hosts}


def write_client_files(layout: Layout) -> None:
    """hosts.json, known_hosts and an ssh_config, all derived from the keys (no secret in them)."""
    info = hosts_info(layout)
    layout.hosts_json.write_text(json.dumps(info, indent=2) + "\n")
    layout.known_hosts.write_text("".join(f"[{h['sshHost']}]:{h['sshPort']} {h['hostPublicKey']}\n"
                                          for h in info["hosts"]))
    layout.ssh_config.write_text("".join(
        f"Host {h['name']}\n  HostName {h['sshHost']}\n  Port {h['sshPort']}\n  User {h['sshUser']}\n"
        f"  IdentityFile {h['sshKeyFile']}\n  IdentitiesOnly yes\n  UserKnownHostsFile {layout.known_hosts}\n"
        f"  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n" for h in info["hosts"]))
