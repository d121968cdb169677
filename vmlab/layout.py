"""Names, addresses, ports and file places of the VM lab, in one spot so the README, the stack and the tests
can rely on them."""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]

# The link between the VMs carries the servers' public addresses, on eth0 as on the netns lab hosts.
LINK_NETWORK = "192.0.2.0/24"
LINK_PREFIX = 24
LINK_INTERFACE = "eth0"
# The second NIC is qemu user-mode networking: only the SSH forward (and nothing outbound: restrict=on).
USER_INTERFACE = "eth1"
USER_ADDRESS = "10.0.2.15"   # where qemu's user-mode hostfwd delivers by default
# The machine's lab services the guests reach, each at GUEST_SERVICES_ADDRESS:<port> through qemu's guestfwd;
# a forwarder in the guest puts them on the guest's own 127.0.0.1:<port>, where the netns lab hosts find them
# too, so the stacks' endpoints (ovh:endpoint http://127.0.0.1:18080/1.0, msmtp to 127.0.0.1:2525) are the same.
SERVICE_PORTS = {18080: "OVH API emulator", 2525: "mail sink"}
GUEST_SERVICES_ADDRESS = "10.0.2.100"

MEMORY_MB = 384              # DRBD's module load is killed at 128 MB; 256 MB is enough, systemd likes more
DRBD_DISK_MB = 64
ROOT_SIZE = "3G"             # the ext4 root; a sparse file, so only what the guests write costs space


@dataclass(frozen=True)
class VmSpec:
    name: str
    address: str        # on the link (eth0)
    ssh_port: int       # 127.0.0.1:<port> on the machine -> guest port 22
    link_port: int      # this VM's UDP end of the link on 127.0.0.1
    peer_port: int      # the other VM's UDP end
    tag: int            # last byte of the MAC addresses

    @property
    def link_mac(self) -> str:
        return f"52:54:00:c0:02:{self.tag:02x}"

    @property
    def user_mac(self) -> str:
        return f"52:54:00:0a:02:{self.tag:02x}"


VMS: List[VmSpec] = [
    VmSpec("ns11111", "192.0.2.11", 22311, 22511, 22522, 0x11),
    VmSpec("ns22222", "192.0.2.22", 22322, 22522, 22511, 0x22),
]


def spec(name: str) -> VmSpec:
    for vm in VMS:
        if vm.name == name:
            return vm
    raise KeyError(f"unknown VM {name!r}; the VM lab has {', '.join(v.name for v in VMS)}")


class Layout:
    """Files under the state directory (<repo>/.vmlab unless VMLAB_DIR says otherwise)."""

    def __init__(self, root: Path = None):
        self.root = Path(root or os.environ.get("VMLAB_DIR") or REPO / ".vmlab").resolve()
        self.cache = self.root / "cache"            # the base image, built once
        self.base = self.cache / "base"             # complete only when base.json is in it
        self.base_image = self.base / "root.ext4"
        self.kernel = self.base / "vmlinuz"
        self.initrd = self.base / "initrd.img"
        self.base_stamp = self.base / "base.json"
        self.build = self.cache / "build"           # work in progress; removed when a build starts or ends
        self.debs = self.cache / "debs"             # debootstrap's package cache, kept for a rebuild
        self.accel_file = self.cache / "accel.json"
        self.ssh = self.root / "ssh"
        self.client_key = self.ssh / "id_ed25519"
        self.known_hosts = self.ssh / "known_hosts"
        self.ssh_config = self.ssh / "config"
        self.hosts_json = self.root / "hosts.json"

    def vm_dir(self, name: str) -> Path:
        return self.root / "vms" / name

    def host_key(self, name: str) -> Path:
        return self.ssh / f"host_{name}_ed25519"
