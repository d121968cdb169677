"""PID 1 of a lab host: builds the host's private filesystem view, names it, runs its sshd, reaps orphans.

Started by lab/lab.py (never by hand) inside the host's network namespace and fresh mount, UTS, IPC and PID
namespaces:

    nsenter --net=/run/netns/NAME unshare --mount --uts --ipc --pid --fork --kill-child --propagation private \
        /usr/bin/python3 -I -B hostinit.py --name NAME --dir STATE/hosts/NAME --hide STATE

Standard library only, no import from the repo: once /root is replaced, only the system Python is reliable.
On SIGTERM it stops every process of the host (SIGTERM, then SIGKILL after 3 s) and exits; the kernel then
tears down the namespaces and every mount in them. It writes DIR/boot.json once sshd is started:
{"pid": <its PID on the machine>, "start": <kernel start time>, "name": NAME}.
"""
import argparse
import ctypes
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
SSHD = ["/usr/sbin/sshd", "-D", "-e"]
RESPAWN_LIMIT = 5        # sshd restarts allowed per RESPAWN_WINDOW seconds
RESPAWN_WINDOW = 60.0
STOP_GRACE = 3.0


class Shutdown(Exception):
    pass


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} init: {message}\n")
    sys.stdout.flush()


def run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")


def set_comm(name: bytes) -> None:
    """Show up as `netlab-init` in ps instead of python3."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def machine_identity() -> dict:
    """Our PID as the machine sees it: /proc is still the machine's until we mount our own."""
    pid = int(os.readlink("/proc/self"))
    raw = open(f"/proc/{pid}/stat").read()
    return {"pid": pid, "start": int(raw[raw.rindex(")") + 2:].split()[19])}


def mounts_below(top: str) -> list:
    """Mount points strictly below top, deepest first (from this mount namespace's mountinfo)."""
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(top.rstrip("/") + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def build_filesystem(host_dir: str, hide: str) -> None:
    run("mount", "--make-rprivate", "/")
    # the machine's /run/netns/* mounts would pin the lab's (and others') network namespaces for the host's life
    for point in mounts_below("/run"):
        run("umount", "--lazy", point)
    for path in ("etc", "var"):
        run("mount", "-t", "overlay", f"lab-{path}", "-o",
            f"lowerdir=/{path},upperdir={host_dir}/{path}.upper,workdir={host_dir}/{path}.work", f"/{path}")
    for path in ("run", "tmp", "root"):
        run("mount", "--bind", f"{host_dir}/{path}", f"/{path}")
    run("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    run("mount", "-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys")
    run("mount", "-t", "tmpfs", "-o", "nosuid,nodev,mode=1777,size=64m", "shm", "/dev/shm")
    if hide:
        # the lab's state dir (the client key, the other host's files) is none of the host's business
        run("mount", "-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec,size=4k,mode=755", "lab-hidden", hide)


def prepare_run() -> None:
    """What a boot creates in /run: the packages' tmpfiles.d entries, sshd's privilege separation dir."""
    if os.path.exists("/usr/bin/systemd-tmpfiles"):
        result = subprocess.run(["systemd-tmpfiles", "--create", "--boot", "--prefix=/run"],
                                capture_output=True, text=True, env=ENV)
        if result.returncode != 0:
            log(f"systemd-tmpfiles: {result.stderr.strip()}")
    for path, mode in (("/run/sshd", 0o755), ("/run/lock", 0o1777)):
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    # the boot is over (what systemd-user-sessions does): logins other than root's are allowed again
    if os.path.exists("/run/nologin"):
        os.unlink("/run/nologin")


def drop_foreign_host_keys() -> None:
    """The host key is the host's own ed25519 key; the machine's other host keys are removed from the view."""
    for path in glob.glob("/etc/ssh/ssh_host_*_key*"):
        if not os.path.basename(path).startswith("ssh_host_ed25519_key"):
            os.unlink(path)


def start_sshd() -> int:
    proc = subprocess.Popen(SSHD, env=ENV, stdin=subprocess.DEVNULL)
    log(f"sshd started (pid {proc.pid})")
    return proc.pid


def write_boot(dir_fd: int, report: dict) -> None:
    """Through a directory fd opened before the state dir got hidden."""
    fd = os.open(".boot.json.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as fh:
        json.dump(report, fh)
    os.replace(".boot.json.tmp", "boot.json", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def stop_everything() -> None:
    """kill(-1) from a PID namespace's init reaches every other process of the namespace (and nested ones)."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
        try:
            os.kill(-1, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.05)


def supervise(sshd: int) -> None:
    restarts = []
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            time.sleep(1.0)   # nothing to reap; orphans adopted later wake us through os.wait next round
            continue
        if pid != sshd:
            continue
        log(f"sshd exited ({describe(status)})")
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESPAWN_WINDOW]
        if len(restarts) >= RESPAWN_LIMIT:
            log(f"sshd exited {RESPAWN_LIMIT} times within {RESPAWN_WINDOW:.0f} s: not restarting it")
            sshd = -1
            continue
        restarts.append(now)
        time.sleep(0.5)
        sshd = start_sshd()


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def on_signal(signum, _frame):
    raise Shutdown(signal.Signals(signum).name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True, help="the host's directory under the lab state dir")
    parser.add_argument("--hide", default="", help="a directory to cover with an empty tmpfs (the state dir)")
    args = parser.parse_args(argv)
    if os.getpid() != 1:
        log("must run as PID 1 of a new PID namespace (see the docstring)")
        return 2
    set_comm(b"netlab-init")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        identity = machine_identity()
        dir_fd = os.open(args.dir, os.O_RDONLY | os.O_DIRECTORY)
        build_filesystem(args.dir, args.hide)
        socket.sethostname(args.name)
        prepare_run()
        drop_foreign_host_keys()
        os.chdir("/")
        sshd = start_sshd()
        write_boot(dir_fd, {**identity, "name": args.name})
        os.close(dir_fd)
        log(f"host {args.name} up (machine pid {identity['pid']})")
        supervise(sshd)
    except Shutdown as stop:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        log(f"{stop}: stopping every process of the host")
        stop_everything()
        log("stopped")
        return 0
    except Exception as error:  # a boot failure: say why on the console, take the host down
        log(f"boot failed: {error}")
        stop_everything()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
