"""up / down / status / ssh of the VM lab."""
import json
import os
import subprocess
import time
from typing import List

from . import identity, image, link, qemu
from .layout import DRBD_DISK_MB, VMS, Layout, VmSpec, spec
from .tools import VmLabError, ensure_tools, require_root, run, say

BOOT_TIMEOUT = float(os.environ.get("VMLAB_BOOT_TIMEOUT", "300"))
SSH_PROBE_TIMEOUT = 15
STATUS_UP, STATUS_PARTIAL, STATUS_DOWN = 0, 1, 3


def running(layout: Layout) -> List[VmSpec]:
    return [vm for vm in VMS if qemu.recorded(layout, vm) is not None]


def ssh_argv(layout: Layout, vm: VmSpec, command: List[str]) -> List[str]:
    return ["ssh", "-F", str(layout.ssh_config), vm.name, "--", *command]


def answers(layout: Layout, vm: VmSpec) -> bool:
    try:
        result = subprocess.run(ssh_argv(layout, vm, ["true"]), capture_output=True, timeout=SSH_PROBE_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def console_tail(layout: Layout, vm: VmSpec, lines: int = 15) -> str:
    try:
        text = qemu.VmFiles(layout, vm).console_log.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_for_ssh(layout: Layout, vms: List[VmSpec], t0: float) -> None:
    """Until every VM's sshd accepts the lab's key with the pinned host key; bounded by BOOT_TIMEOUT."""
    pending = list(vms)
    deadline = t0 + BOOT_TIMEOUT
    while pending:
        for vm in list(pending):
            if qemu.recorded(layout, vm) is None:
                raise VmLabError(f"{vm.name}: qemu exited while booting; console tail:\n"
                                 f"{console_tail(layout, vm)}")
            if answers(layout, vm):
                say(f"{vm.name}: SSH answers on 127.0.0.1:{vm.ssh_port} ({time.monotonic() - t0:.1f} s after start)")
                pending.remove(vm)
        if pending and time.monotonic() > deadline:
            names = ", ".join(v.name for v in pending)
            raise VmLabError(f"{names}: SSH did not answer within {BOOT_TIMEOUT:.0f} s (VMLAB_BOOT_TIMEOUT); "
                             f"console tail of {pending[0].name}:\n{console_tail(layout, pending[0])}")
        if pending:
            time.sleep(1)


def prepare_disks(layout: Layout, vm: VmSpec) -> None:
    """A fresh qcow2 overlay over the base and a fresh, zeroed DRBD disk: every `up` starts clean servers."""
    f = qemu.VmFiles(layout, vm)
    identity.private_dir(f.dir)
    for old in (f.root, f.drbd):
        if old.exists():
            old.unlink()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(layout.base_image), str(f.root)],
        60, f"creating {f.root}")
    with open(f.drbd, "wb") as disk:
        disk.truncate(DRBD_DISK_MB * 1024 * 1024)
    identity.write_identity_tar(layout, vm, f.identity)


def up(layout: Layout) -> None:
    t0 = time.monotonic()
    already = running(layout)
    if len(already) == len(VMS):
        identity.write_client_files(layout)
        wait_for_ssh(layout, VMS, time.monotonic())
        say(f"VM lab already up: nothing changed; hosts: {layout.hosts_json}")
        return
    require_root()
    ensure_tools()
    if already:
        # One VM was killed (a drill) or crashed: boot it again on its own disks; its DRBD data is kept.
        say(f"VM lab partly up ({', '.join(v.name for v in already)} running): starting the others on their "
            f"existing disks")
        for vm in VMS:
            if vm not in already:
                start(layout, vm.name)
        return
    identity.private_dir(layout.root)
    layout.cache.mkdir(exist_ok=True)
    stamp = image.ensure_base(layout)
    made = identity.ensure_keys(layout)
    if made:
        say(f"generated SSH keys: {', '.join(made)}")
    identity.write_client_files(layout)
    accel = qemu.pick_accel(layout, stamp["kernel"])
    t_boot = time.monotonic()
    for vm in VMS:
        prepare_disks(layout, vm)
        pid = qemu.start(layout, vm, accel)
        say(f"{vm.name}: qemu PID {pid} ({accel[1].split(',')[0]}), SSH 127.0.0.1:{vm.ssh_port}, "
            f"eth0 {vm.address}, console {qemu.VmFiles(layout, vm).console}")
    try:
        wait_for_ssh(layout, VMS, t_boot)
    except VmLabError:
        for vm in VMS:
            qemu.stop(layout, vm)
        raise
    say(f"VM lab up in {time.monotonic() - t0:.1f} s (boot {time.monotonic() - t_boot:.1f} s); "
        f"hosts: {layout.hosts_json}")


def kill(layout: Layout, name: str) -> None:
    """A power cut: SIGKILL the VM's qemu; its disks stay for `start`."""
    vm = spec(name)
    if qemu.kill(layout, vm):
        say(f"{name}: qemu killed (disks kept; `python3 -m vmlab start {name}` boots it again)")
    else:
        say(f"{name}: not running: nothing to kill")


def start(layout: Layout, name: str) -> None:
    """Boot a stopped VM again on the disks it had (its DRBD data, its root), as a server reboots."""
    vm = spec(name)
    if qemu.recorded(layout, vm) is not None:
        say(f"{name}: already running")
        return
    require_root()
    f = qemu.VmFiles(layout, vm)
    missing = [str(p) for p in (f.root, f.drbd, f.identity, layout.base_stamp) if not p.exists()]
    if missing:
        raise VmLabError(f"{name}: cannot boot it on its old disks, missing {', '.join(missing)}; "
                         f"`python3 -m vmlab down` then `up` makes fresh ones")
    accel = qemu.pick_accel(layout, json.loads(layout.base_stamp.read_text())["kernel"])
    t0 = time.monotonic()
    pid = qemu.start(layout, vm, accel)
    say(f"{name}: qemu PID {pid} on its existing disks")
    identity.write_client_files(layout)
    wait_for_ssh(layout, [vm], t0)


def set_link(state: str) -> None:
    if state == "down":
        link.cut()
        say("link between the VMs cut (both keep running); `python3 -m vmlab link up` restores it")
    elif state == "up":
        say("link between the VMs restored" if link.restore() else "link between the VMs already whole")
    else:
        raise VmLabError(f"link {state!r}: expected up or down")


def down(layout: Layout) -> None:
    link.restore()
    stopped = [vm.name for vm in VMS if qemu.stop(layout, vm)]
    if layout.hosts_json.exists():
        layout.hosts_json.unlink()
    if stopped:
        say(f"VM lab down: stopped {', '.join(stopped)}")
    else:
        say("VM lab already down: nothing to do")


def status(layout: Layout) -> int:
    up_now = running(layout)
    for vm in VMS:
        pid = qemu.recorded(layout, vm)
        state = f"running (qemu PID {pid})" if pid else "stopped"
        print(f"{vm.name}: {state}; SSH 127.0.0.1:{vm.ssh_port}; eth0 {vm.address}")
    base = "ready" if layout.base_stamp.exists() else "not built"
    print(f"base image: {base} ({layout.base})")
    print(f"link between the VMs: {'CUT (python3 -m vmlab link up)' if link.is_cut() else 'whole'}")
    if len(up_now) == len(VMS):
        return STATUS_UP
    return STATUS_PARTIAL if up_now else STATUS_DOWN


def ssh(layout: Layout, name: str, command: List[str]) -> int:
    vm = spec(name)
    if qemu.recorded(layout, vm) is None:
        raise VmLabError(f"{name} is not running; `python3 -m vmlab up` first")
    return subprocess.call(ssh_argv(layout, vm, command))
