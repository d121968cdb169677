"""The base image: a Debian 12 root filesystem built once with debootstrap + apt, kept as a sparse ext4 file
that every VM boots through its own qcow2 overlay, next to the kernel and initrd the root itself installed.

A build happens in cache/build and becomes cache/base only once complete (base.json last), so a build that
was interrupted is noticed and redone. Every command that touches the chroot runs in private mount and PID
namespaces: a daemon a package starts, or a mount left behind by a killed build, dies with the namespace.
"""
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import List

from . import guest_files
from .layout import ROOT_SIZE, Layout
from .tools import VmLabError, run, say

DEBOOTSTRAP_TIMEOUT = 1200
APT_TIMEOUT = 1800
MKFS_TIMEOUT = 600
POLICY_DENY = "#!/bin/sh\n# the VM lab's image build: no daemon starts in the chroot\nexit 101\n"


def configured_mirror() -> str:
    """The Debian mirror apt on this machine uses (VMLAB_MIRROR overrides), else deb.debian.org."""
    if os.environ.get("VMLAB_MIRROR"):
        return os.environ["VMLAB_MIRROR"].rstrip("/")
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):   # deb822: URIs + Suites in one stanza
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and guest_files.SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        for line in text.splitlines():              # one-line format
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("[") \
                    and parts[2] == guest_files.SUITE and "security" not in parts[1]:
                return parts[1].rstrip("/")
    return guest_files.DEFAULT_MIRROR


def base_ready(layout: Layout, mirror: str) -> bool:
    try:
        stamp = json.loads(layout.base_stamp.read_text())
    except (OSError, ValueError):
        return False
    return (stamp.get("recipe") == guest_files.recipe_digest(mirror)
            and all(p.is_file() for p in (layout.base_image, layout.kernel, layout.initrd)))


def mounts_under(path: Path) -> List[str]:
    prefix = str(path.resolve()) + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(prefix) or point == prefix[:-1]:
                found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """Delete a build tree, never following a mount out of it (refuses when something is mounted there)."""
    if not path.exists():
        return
    mounted = mounts_under(path)
    if mounted:
        raise VmLabError(f"refusing to delete {path}: mounted inside it: {', '.join(mounted)}; unmount them first")
    shutil.rmtree(path)


def in_namespaces(script: str, timeout: float, what: str, env=None):
    """sh -c script in fresh mount + PID namespaces (mounts and processes end with it)."""
    return run(["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script],
               timeout, what, env=env)


def build_base(layout: Layout, mirror: str) -> None:
    t0 = time.monotonic()
    digest = guest_files.recipe_digest(mirror)
    if layout.base.exists():
        say(f"base image in {layout.base} is incomplete or from another recipe: rebuilding it")
    if layout.build.exists():
        say(f"removing an unfinished build in {layout.build}")
    remove_tree(layout.build)
    root = layout.build / "root"
    layout.build.mkdir(parents=True)
    layout.debs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")

    say(f"[1/5] debootstrap {guest_files.SUITE} (minbase) from {mirror}")
    in_namespaces(f"debootstrap --variant=minbase --cache-dir={layout.debs} {guest_files.SUITE} {root} {mirror}",
                  DEBOOTSTRAP_TIMEOUT, "debootstrap of the base image", env=env)
    say(f"      debootstrap done in {time.monotonic() - t0:.0f} s")

    say(f"[2/5] apt-get install {len(guest_files.PACKAGES)} packages in the chroot (kernel, sshd, heartbeat, "
        f"drbd-utils, nftables...)")
    t1 = time.monotonic()
    _write(root / "usr/sbin/policy-rc.d", 0o755, POLICY_DENY)
    for path, (mode, content) in guest_files.FILES.items():
        _write(root / path.lstrip("/"), mode, content)
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {guest_files.SUITE} main\n")
    packages = " ".join(sorted(guest_files.PACKAGES))
    archives = root / "var/cache/apt/archives"
    chroot = (f"set -e; mount -t proc proc {root}/proc; mount -t sysfs sys {root}/sys; "
              f"mount --bind {layout.debs} {archives}; exec chroot {root} sh -c \"$0\"")
    install = (f"set -e; apt-get update -q; apt-get install -y -q --no-install-recommends {packages}; "
               f"rm -f /var/cache/apt/*.bin")
    in_namespaces(chroot.replace('"$0"', _quote(install)), APT_TIMEOUT, "apt-get install in the chroot", env=env)
    say(f"      packages installed in {time.monotonic() - t1:.0f} s")

    say("[3/5] configuring the image (sshd, networkd, identity unit, initrd with virtio + ext4)")
    t1 = time.monotonic()
    in_namespaces(chroot.replace('"$0"', _quote(guest_files.CHROOT_SCRIPT)), APT_TIMEOUT,
                  "configuring the base image in the chroot", env=env)
    (root / "usr/sbin/policy-rc.d").unlink()
    say(f"      configured in {time.monotonic() - t1:.0f} s")

    say("[4/5] kernel and initrd")
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise VmLabError(f"no kernel in {root}/boot after installing linux-image-amd64")
    version = kernels[-1].name[len("vmlinuz-"):]
    shutil.copy2(kernels[-1], layout.build / "vmlinuz")
    shutil.copy2(root / "boot" / f"initrd.img-{version}", layout.build / "initrd.img")

    say(f"[5/5] ext4 root image ({ROOT_SIZE}, sparse) from the tree")
    t1 = time.monotonic()
    image = layout.build / "root.ext4"
    run(["mkfs.ext4", "-q", "-F", "-L", "vmlab-root", "-E", "root_owner=0:0", "-d", str(root), str(image),
         ROOT_SIZE], MKFS_TIMEOUT, "mkfs.ext4 -d of the base image")
    say(f"      image written in {time.monotonic() - t1:.0f} s")
    remove_tree(root)
    stamp = {"recipe": digest, "mirror": mirror, "suite": guest_files.SUITE, "kernel": version,
             "builtAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "buildSeconds": round(time.monotonic() - t0)}
    (layout.build / "base.json").write_text(json.dumps(stamp, indent=2) + "\n")
    remove_tree(layout.base)
    os.rename(layout.build, layout.base)
    say(f"base image ready in {time.monotonic() - t0:.0f} s: Debian {guest_files.SUITE}, kernel {version}")


def ensure_base(layout: Layout) -> dict:
    mirror = configured_mirror()
    if not base_ready(layout, mirror):
        build_base(layout, mirror)
    return json.loads(layout.base_stamp.read_text())


def _write(path: Path, mode: int, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.chmod(path, mode)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
