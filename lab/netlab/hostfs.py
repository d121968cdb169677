"""Each host's private files, prepared on the machine before the host boots.

A host sees the machine's /etc and /var through an overlay whose upper layer is its own directory here, so
packages installed on the machine show up on every host (they share /usr), while whatever a host writes stays
its own and survives `down`/`up` like a disk across reboots. /run and /tmp are emptied at each boot; /root is
the host's own home (authorized_keys for the lab key) and never the machine's.

    <state>/hosts/<name>/etc.upper  etc.work  var.upper  var.work   overlay layers
    <state>/hosts/<name>/run  tmp  root                             bind-mounted on /run /tmp /root
    <state>/hosts/<name>/console.log                                the init's and sshd's output
"""
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

from lab.netlab import topology as topo
from lab.netlab.state import Layout, write_private

SSHD_CONFIG = """\
# sshd of the lab host {name}: key-only root login. Written by lab/lab.py at every boot of the host.
# Settings before the Include win over any drop-in (sshd keeps the first value it reads).
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
AuthenticationMethods publickey
UsePAM yes
PrintMotd no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
Include /etc/ssh/sshd_config.d/*.conf
"""


def keygen(path: Path, comment: str) -> bool:
    """An ed25519 key pair without passphrase at path (0600) and path.pub; False if it already exists."""
    if path.exists() and path.with_name(path.name + ".pub").exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        if stale.exists():
            stale.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    os.chmod(path, 0o600)
    return True


def public_key(path: Path) -> str:
    """'type base64' of a .pub file, without the comment."""
    return " ".join(path.read_text().split()[:2])


class HostFiles:
    def __init__(self, layout: Layout, host: topo.Host):
        self.host = host
        self.dir = layout.host_dir(host.name)
        self.etc = self.dir / "etc.upper"
        self.root_home = self.dir / "root"
        self.host_key = self.etc / "ssh" / "ssh_host_ed25519_key"
        self.console = self.dir / "console.log"
        self.boot = self.dir / "boot.json"

    def host_public_key(self) -> str:
        return public_key(self.host_key.with_name(self.host_key.name + ".pub"))

    def prepare(self, client_public_key: str) -> List[str]:
        """Make the host bootable; returns what it created (empty on a later boot with nothing new)."""
        made = []
        for sub, mode in (("etc.upper", 0o755), ("etc.work", 0o700), ("var.upper", 0o755), ("var.work", 0o700),
                          ("root", 0o700), ("run", 0o755), ("tmp", 0o1777)):
            path = self.dir / sub
            if not path.exists():
                path.mkdir(parents=True)
                made.append(sub)
            os.chmod(path, mode)
        os.chmod(self.dir, 0o700)
        (self.etc / "ssh").mkdir(parents=True, exist_ok=True)
        if keygen(self.host_key, f"root@{self.host.name}"):
            made.append("ssh host key")
        write_private(self.etc / "ssh" / "sshd_config", SSHD_CONFIG.format(name=self.host.name), 0o644)
        write_private(self.etc / "hostname", self.host.name + "\n", 0o644)
        write_private(self.etc / "hosts", self._hosts_file(), 0o644)
        if self.authorize(client_public_key):
            made.append("authorized_keys")
        return made

    def authorize(self, client_public_key: str) -> bool:
        """root's authorized_keys holds exactly the lab client key; safe while the host runs (a bind mount)."""
        ssh_dir = self.root_home / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        return write_private(ssh_dir / "authorized_keys", f"{client_public_key} ovh-ha-cluster-lab\n", 0o600)

    def _hosts_file(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{h.address}\t{h.name}" for h in topo.HOSTS]
        lines.append(f"{topo.GATEWAY}\tgateway")
        return "\n".join(lines) + "\n"

    def reset_volatile(self) -> None:
        """What a reboot forgets: /run and /tmp, the boot report."""
        for sub in ("run", "tmp"):
            path = self.dir / sub
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        if self.boot.exists():
            self.boot.unlink()
