"""qemu for the VM lab: picking KVM or TCG, the command line of one VM, and starting/stopping it by the PID
and start time it recorded (never by name)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from lab.netlab import procs

from .layout import GUEST_SERVICES_ADDRESS, MEMORY_MB, SERVICE_PORTS, Layout, VmSpec
from .tools import VmLabError, run, say

QEMU = "qemu-system-x86_64"
TCG = ["-accel", "tcg,tb-size=64"]
KVM = ["-accel", "kvm", "-cpu", "host"]
ACCEL_PROBE_TIMEOUT = 30
START_TIMEOUT = 30
STOP_TIMEOUT = 10
PIPE = Path(__file__).resolve().parent / "pipe.py"


def qemu_version() -> str:
    return run([QEMU, "--version"], 30, "qemu --version").stdout.splitlines()[0]


def _kvm_boots(layout: Layout) -> bool:
    """Boot the stock kernel under KVM with no root: it must reach its 'cannot mount root' panic and qemu must
    exit on its own. On some hosts KVM aborts or hangs with a stock kernel; that counts as no."""
    argv = [QEMU, *KVM, "-m", str(MEMORY_MB), "-smp", "1", "-kernel", str(layout.kernel), "-append",
            "console=ttyS0 panic=-1 root=/dev/vmlab-none rootwait=0", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-nodefaults"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=ACCEL_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False
    return proc.returncode == 0 and b"Kernel panic" in out


def pick_accel(layout: Layout, kernel: str) -> list:
    """VMLAB_ACCEL=kvm|tcg forces; else KVM when /dev/kvm is there and a probe boot works, cached per kernel
    and qemu version (the probe takes up to ACCEL_PROBE_TIMEOUT s when KVM hangs)."""
    forced = os.environ.get("VMLAB_ACCEL", "").lower()
    if forced in ("kvm", "tcg"):
        return KVM if forced == "kvm" else TCG
    if forced:
        raise VmLabError(f"VMLAB_ACCEL={forced!r}: expected kvm, tcg or unset (automatic)")
    if not os.path.exists("/dev/kvm"):
        return TCG
    key = {"kernel": kernel, "qemu": qemu_version()}
    try:
        cached = json.loads(layout.accel_file.read_text())
        if cached.get("key") == key:
            return KVM if cached["kvm"] else TCG
    except (OSError, ValueError, KeyError):
        pass
    say("probing KVM with the stock kernel (falls back to TCG when it fails)")
    ok = _kvm_boots(layout)
    layout.accel_file.write_text(json.dumps({"key": key, "kvm": ok}) + "\n")
    say(f"KVM {'works' if ok else 'does not boot the stock kernel here'}: using {'kvm' if ok else 'tcg'}")
    return KVM if ok else TCG


class VmFiles:
    def __init__(self, layout: Layout, vm: VmSpec):
        d = layout.vm_dir(vm.name)
        self.dir = d
        self.root = d / "root.qcow2"
        self.drbd = d / "drbd.img"
        self.identity = d / "identity.tar"
        self.console = d / "console.sock"
        self.console_log = d / "console.log"
        self.pidfile = d / "qemu.pid"
        self.record = d / "qemu.json"
        self.pipe_log = d / "guestfwd.log"


def argv(layout: Layout, vm: VmSpec, accel: list) -> list:
    f = VmFiles(layout, vm)
    cmdline = (f"root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 quiet systemd.hostname={vm.name} "
               f"systemd.show_status=0")
    return [
        QEMU, *accel, "-name", f"vmlab-{vm.name}", "-m", str(MEMORY_MB), "-smp", "1", "-nodefaults",
        "-kernel", str(layout.kernel), "-initrd", str(layout.initrd), "-append", cmdline,
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-chardev", f"socket,id=con,path={f.console},server=on,wait=off,logfile={f.console_log}",
        "-serial", "chardev:con",
        "-fw_cfg", f"name=opt/vmlab/identity,file={f.identity}",
        "-drive", f"file={f.root},format=qcow2,if=none,id=root,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=root,addr=0x5",
        "-drive", f"file={f.drbd},format=raw,if=none,id=drbd,cache=writeback",
        "-device", "virtio-blk-pci,drive=drbd,addr=0x6",
        # eth0: the link to the other VM (UDP datagrams on loopback; no host networking involved)
        "-netdev", f"socket,id=link,udp=127.0.0.1:{vm.peer_port},localaddr=127.0.0.1:{vm.link_port}",
        "-device", f"virtio-net-pci,netdev=link,mac={vm.link_mac},addr=0x3",
        # eth1: user-mode networking, isolated (restrict=on): SSH forwarded from the machine's loopback, and the
        # machine's lab services (OVH API emulator, mail sink) reachable at GUEST_SERVICES_ADDRESS, nothing else
        "-netdev", f"user,id=user,restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{vm.ssh_port}-:22"
                   + "".join(_guestfwd(port, f.pipe_log) for port in SERVICE_PORTS),
        "-device", f"virtio-net-pci,netdev=user,mac={vm.user_mac},addr=0x4",
        "-device", "virtio-rng-pci,addr=0x7",
        "-daemonize", "-pidfile", str(f.pidfile),
    ]


def _guestfwd(port: int, log: Path) -> str:
    """qemu starts PIPE per connection (argv split on blanks, so no blank in the paths; commas doubled)."""
    for path in (PIPE, log):
        if " " in str(path):
            raise VmLabError(f"{path}: qemu's guestfwd command cannot carry a path with a blank in it")
    command = f"{sys.executable} {PIPE} {port} {log}".replace(",", ",,")
    return f",guestfwd=tcp:{GUEST_SERVICES_ADDRESS}:{port}-cmd:{command}"


def recorded(layout: Layout, vm: VmSpec) -> Optional[int]:
    """The PID of this VM's qemu when the process recorded at start is still that process, else None."""
    f = VmFiles(layout, vm)
    try:
        record = json.loads(f.record.read_text())
    except (OSError, ValueError):
        return None
    return int(record["pid"]) if procs.service_running(record, str(f.pidfile)) else None


def start(layout: Layout, vm: VmSpec, accel: list) -> int:
    f = VmFiles(layout, vm)
    for stale in (f.pidfile, f.console, f.record):
        if stale.exists() or stale.is_symlink():
            stale.unlink()
    f.console_log.write_bytes(b"")
    run(argv(layout, vm, accel), START_TIMEOUT, f"starting qemu for {vm.name}")
    pid = int(f.pidfile.read_text().split()[0])
    started = procs.start_time(pid)
    if started is None:
        raise VmLabError(f"{vm.name}: qemu (PID {pid}) exited right after starting; see {f.console_log}")
    f.record.write_text(json.dumps({"pid": pid, "startTime": started, "accel": accel[1]}) + "\n")
    return pid


def kill(layout: Layout, vm: VmSpec) -> bool:
    """SIGKILL the recorded qemu at once, as a power cut would: the guest gets no chance to flush or say goodbye.
    Its disks stay as they are."""
    f = VmFiles(layout, vm)
    pid = recorded(layout, vm)
    if pid is not None:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pid = None
        for _ in range(100):   # bounded: 5 s for the kernel to reap it
            if pid is None or procs.state(pid) in (None, "Z"):
                break
            time.sleep(0.05)
    for stale in (f.record, f.pidfile, f.console):
        if stale.exists() or stale.is_symlink():
            stale.unlink()
    return pid is not None


def stop(layout: Layout, vm: VmSpec) -> bool:
    """SIGTERM then SIGKILL the recorded qemu; True when one was running."""
    f = VmFiles(layout, vm)
    pid = recorded(layout, vm)
    if pid is not None:
        try:
            procs.stop({"pid": pid, "start": procs.start_time(pid)}, grace=STOP_TIMEOUT)
        except RuntimeError as error:
            raise VmLabError(f"{vm.name}: {error}") from None
    for stale in (f.record, f.pidfile, f.console):
        if stale.exists() or stale.is_symlink():
            stale.unlink()
    return pid is not None
