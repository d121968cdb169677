"""What the base image holds beyond debootstrap: the packages, the files the lab adds and the commands run
once in the chroot. Changing any of it changes the recipe digest, so the next `up` rebuilds the base."""
import hashlib
import json
from pathlib import Path

from .layout import GUEST_SERVICES_ADDRESS, SERVICE_PORTS

# The netns lab's forwarder runs in the guests too: the machine's services on the guest's own loopback.
_FORWARD = (Path(__file__).resolve().parents[1] / "lab" / "netlab" / "forward.py").read_text()
_FORWARD_RULES = " ".join(f"--rule root,127.0.0.1,{port},root,{GUEST_SERVICES_ADDRESS},{port}"
                          for port in sorted(SERVICE_PORTS))

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# package -> why the guests have it (debootstrap --variant=minbase adds these and their dependencies)
PACKAGES = {
    "systemd-sysv": "init",
    "udev": "device nodes, interface names",
    "dbus": "hostnamectl and friends",
    "kmod": "modprobe (drbd, esp4...)",
    "linux-image-amd64": "Debian's stock kernel: DRBD 8.4 and ESP modules",
    "initramfs-tools": "the initrd that loads virtio and ext4 before the root is mounted",
    "openssh-server": "how the machine and the cluster program reach each server",
    "heartbeat": "the cluster manager",
    "drbd-utils": "drbdadm (drbdadm-84 drives the 8.4 module)",
    "nftables": "the cluster firewall",
    "iproute2": "addresses, xfrm states and policies",
    "iputils-ping": "reachability probes",
    "python3": "the node agent",
    "bsd-mailx": "the `mail` command Heartbeat's MailTo calls",
    "msmtp-mta": "a sendmail without a daemon",
    "procps": "ps, pgrep",
}

# Files written into the root before the chroot commands run: path -> (mode, content).
FILES = {
    # Only what the initrd needs to find the root: a small initrd boots faster under emulation.
    "/etc/initramfs-tools/conf.d/vmlab.conf": (0o644, "MODULES=list\nCOMPRESS=gzip\n"),
    "/etc/initramfs-tools/modules": (0o644, "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n"),
    "/etc/fstab": (0o644, "/dev/vda / ext4 rw,errors=remount-ro 0 0\n"),
    "/etc/hostname": (0o644, "vmlab-base\n"),
    "/etc/ssh/sshd_config.d/vmlab.conf": (0o644,
        "# keys only; the host key comes from the VM's identity (vmlab-identity.service)\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "UseDNS no\n"),
    # The VM's identity (hostname, host key, client key, addresses) arrives through qemu's fw_cfg.
    "/usr/local/sbin/vmlab-identity": (0o755, """#!/bin/sh
# Unpacks this VM's identity (a tar that `vmlab up` hands over through qemu's fw_cfg) over /.
set -eu
modprobe qemu_fw_cfg 2>/dev/null || true
src=/sys/firmware/qemu_fw_cfg/by_name/opt/vmlab/identity/raw
i=0
while [ ! -r "$src" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -r "$src" ]; then echo "vmlab-identity: no identity in fw_cfg; keeping the base's" >&2; exit 0; fi
umask 077
cat "$src" > /run/vmlab-identity.tar
tar -x -f /run/vmlab-identity.tar -C / --no-overwrite-dir
rm -f /run/vmlab-identity.tar
hostname "$(cat /etc/hostname)"
"""),
    "/etc/systemd/system/vmlab-identity.service": (0o644, """[Unit]
Description=VM lab identity from qemu fw_cfg (hostname, SSH keys, addresses)
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=network-pre.target systemd-networkd.service ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/vmlab-identity

[Install]
WantedBy=sysinit.target
"""),
    # A root shell on the serial console (a unix socket only root can open on the machine): the way in
    # when SSH does not answer.
    "/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": (0o644,
        "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 "
        "%I $TERM\n"),
    "/etc/systemd/journald.conf.d/vmlab.conf": (0o644, "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n"),
    "/usr/local/lib/vmlab/forward.py": (0o755, _FORWARD),
    "/etc/systemd/system/vmlab-services.service": (0o644, f"""[Unit]
Description=VM lab: the machine's OVH API emulator and mail sink on this server's 127.0.0.1 ({", ".join(
    f"{port} {what}" for port, what in sorted(SERVICE_PORTS.items()))})
After=network.target

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/vmlab/forward.py --ready-file /run/vmlab-services.ready {_FORWARD_RULES}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""),
}

# Run once in the chroot, after FILES are in place.
CHROOT_SCRIPT = """set -eu
export DEBIAN_FRONTEND=noninteractive
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
passwd -l root >/dev/null
systemctl enable vmlab-identity.service vmlab-services.service systemd-networkd.service >/dev/null 2>&1
systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  man-db.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service >/dev/null 2>&1
update-initramfs -u -k all
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log /var/log/apt/*
"""


def recipe(mirror: str) -> dict:
    return {"suite": SUITE, "mirror": mirror, "packages": sorted(PACKAGES),
            "files": {p: [m, c] for p, (m, c) in sorted(FILES.items())}, "chroot": CHROOT_SCRIPT}


def recipe_digest(mirror: str) -> str:
    return hashlib.sha256(json.dumps(recipe(mirror), sort_keys=True).encode()).hexdigest()[:16]
