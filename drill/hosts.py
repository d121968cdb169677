"""How the drill reaches the nodes: through the lab's own entry (`lab/run`, namespaces) or over SSH.

Both run the same shell snippets, so the lab exercises what a real drill runs. A crash is the node's link
going down and Heartbeat killed with SIGKILL at once: the peer hears nothing more, the resource scripts never
run `stop`, and the failover IP stays configured on the dead link, as after a power cut. Bringing the node
back does what its reboot would: the stale address and the resource agents' state files are gone (unless the
drill is asked to keep them, to prove that a split brain is caught), the link and its routes come back,
Heartbeat starts.
"""
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
ROUTES = "/run/ovh-ha-drill.routes"  # the link's routes, kept by `crash` for `restore` (admin-down drops them)
HEARTBEAT_PROCESSES = "^heartbeat: "


def crash_script(interface: str) -> str:
    i = shlex.quote(interface)
    return (f"ip route show dev {i} | grep -v 'proto kernel' > {ROUTES}; "
            f"ip link set dev {i} down; pkill -KILL -f {shlex.quote(HEARTBEAT_PROCESSES)}; "
            f"echo crashed")


# What a reboot empties (/run is a tmpfs) and a killed Heartbeat leaves behind: the resource agents' state
# files. Left there, MailTo's says "running" and Heartbeat skips its start at the next takeover: no e-mail.
RESOURCE_STATE = "/run/heartbeat/rsctmp/* /run/resource-agents/*"


def restore_script(interface: str, failover_cidr: str, keep_stale_address: bool = False) -> str:
    i = shlex.quote(interface)
    forget = "" if keep_stale_address else (f"ip addr del {shlex.quote(failover_cidr)} dev {i} 2>/dev/null; "
                                            f"rm -f {RESOURCE_STATE}; ")
    return (f"{forget}ip link set dev {i} up; "
            f"if [ -f {ROUTES} ]; then while read -r route; do [ -n \"$route\" ] && "
            f"ip route replace $route dev {i}; done < {ROUTES}; rm -f {ROUTES}; fi; "
            "if [ -d /run/systemd/system ]; then systemctl start heartbeat; "
            "else /etc/init.d/heartbeat start >/dev/null; fi; echo restored")


FOLLOW_BOUND = 1800  # seconds: a log follower ends by itself even if the drill died without stopping it


def follow_command(files: List[str]) -> str:
    """tail -F from now on (no history), bounded in time; the drill stops it earlier by this exact line."""
    return f"exec timeout {FOLLOW_BOUND} tail -s 0.05 -n0 -q -F {' '.join(shlex.quote(f) for f in files)}"


class Follower:
    """Lines of a long-running command (tail -F) as they arrive, each stamped with the arrival time."""

    def __init__(self, node: str, lines, stop: Callable[[], None]):
        self.node = node
        self.lines: List[Tuple[float, str]] = []
        self._stop = stop
        self._thread = threading.Thread(target=self._read, args=(lines,), daemon=True)
        self._thread.start()

    def _read(self, lines) -> None:
        try:
            for raw in lines:  # bytes: Heartbeat's log holds binary dumps of its messages now and then
                line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                self.lines.append((time.time(), line.rstrip("\n")))
        except Exception:  # the connection went away with the node: what was read stays
            pass

    def stop(self) -> None:
        try:
            self._stop()
        except Exception:
            pass


class LabHosts:
    """The netns lab's hosts, through `lab/run` (namespaces, no network path needed)."""

    kind = "lab"

    def run(self, node: str, command: str, timeout: float = 60) -> Tuple[int, str]:
        proc = subprocess.run([str(REPO / "lab" / "run"), node, "sh", "-c", command], capture_output=True,
                              text=True, errors="replace", timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    def follow(self, node: str, files: List[str]) -> Follower:
        command = follow_command(files)
        proc = subprocess.Popen([str(REPO / "lab" / "run"), node, "sh", "-c", command], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

        def stop():
            # nsenter forks into the host's PID namespace: end the tail inside, then the nsenter outside
            self.run(node, f"pkill -f -x {shlex.quote(command[len('exec '):])} || true", timeout=20)
            end_process(proc)
        return Follower(node, proc.stdout, stop)

    def crash(self, node: str, interface: str) -> None:
        status, out = self.run(node, crash_script(interface))
        if "crashed" not in out:
            raise RuntimeError(f"{node}: the crash did not happen (exit {status}): {out.strip()}")

    def restore(self, node: str, interface: str, failover_cidr: str, keep_stale_address: bool) -> None:
        status, out = self.run(node, restore_script(interface, failover_cidr, keep_stale_address), timeout=120)
        if "restored" not in out:
            raise RuntimeError(f"{node}: bringing it back failed (exit {status}): {out.strip()}")

    def probe_command(self, target: str, interval: float, duration: float) -> List[str]:
        return [str(REPO / "lab" / "run"), "outside", "env", f"PYTHONPATH={REPO}", "/usr/bin/python3", "-m",
                "drill.probe", target, "--interval", str(interval), "--duration", str(duration)]


class SshHosts:
    """Real servers over SSH (host keys checked against nodes[].ssh.hostKey). The crash cuts the node's only
    link, so it runs detached on the server, which restores itself `hold` seconds later (the same steps as
    `restore` in the lab); the drill then only waits for SSH to answer again."""

    kind = "ssh"

    def __init__(self, targets: dict, failover_cidr: str, private_key: Optional[str] = None, hold: float = 180.0,
                 keep_stale_address: bool = False):
        from components.remote import ssh

        self._ssh = ssh
        self.targets = targets
        self.failover_cidr = failover_cidr
        self.private_key = private_key
        self.hold = hold
        self.keep_stale_address = keep_stale_address
        self._sessions = {}

    def _session(self, node: str):
        session = self._sessions.get(node)
        if session is None or not session.alive:
            session = self._sessions[node] = self._ssh.Session(self.targets[node], self.private_key)
        return session

    def run(self, node: str, command: str, timeout: float = 60) -> Tuple[int, str]:
        result = self._session(node).run(command, timeout=timeout)
        return result.status, result.stdout + result.stderr

    def follow(self, node: str, files: List[str]) -> Follower:
        channel = self._session(node).client.get_transport().open_session()
        channel.exec_command(f"exec </dev/null; {follow_command(files)}")
        return Follower(node, channel.makefile("rb"), channel.close)

    def crash(self, node: str, interface: str) -> None:
        restore = restore_script(interface, self.failover_cidr, self.keep_stale_address)
        script = f"sleep 1; {crash_script(interface)}; sleep {self.hold:.0f}; {restore}"
        status, out = self.run(node, f"nohup sh -c {shlex.quote(script)} >/dev/null 2>&1 & echo scheduled")
        if "scheduled" not in out:
            raise RuntimeError(f"{node}: the crash could not be scheduled (exit {status}): {out.strip()}")
        session = self._sessions.pop(node, None)
        time.sleep(1.0)           # the crash itself starts one second after the session could return
        if session is not None:
            session.close()

    def restore(self, node: str, interface: str, failover_cidr: str, keep_stale_address: bool) -> None:
        """The server restores itself `hold` seconds after the crash; wait until SSH answers again."""
        deadline = time.monotonic() + self.hold + 300
        while time.monotonic() < deadline:
            try:
                self.run(node, "true", timeout=10)
                return
            except Exception:
                self._sessions.pop(node, None)
                time.sleep(2)
        raise RuntimeError(f"{node}: not reachable over SSH {self.hold + 300:.0f} s after the crash")

    def probe_command(self, target: str, interval: float, duration: float) -> List[str]:
        import sys
        return [sys.executable, "-m", "drill.probe", target, "--interval", str(interval), "--duration",
                str(duration)]


def end_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s, a child of ours."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class VmHosts(SshHosts):
    """The VM lab's two Debian VMs (vmlab/): reached over SSH like real servers, with the host keys the VM lab
    pinned. The crash is the VM's qemu killed with SIGKILL, a power cut: the kernel, its DRBD and its page
    cache vanish with it, writes in flight included. Bringing it back boots the VM again on its own disks,
    as a server reboots. The VMs' link has no third party on it, so there is no probe from outside: the drill
    reads the survivor's state (resource script status, DRBD, mount) and the emulator's routing instead."""

    kind = "vm"
    crash_kind = "power cut: its qemu killed"

    @classmethod
    def from_lab(cls, spec, failover_cidr: str, keep_stale_address: bool = False) -> "VmHosts":
        from components.remote.ssh import Target
        from vmlab.layout import Layout

        info = json.loads(Layout().hosts_json.read_text())
        by_port = {h["sshPort"]: h for h in info["hosts"]}
        targets = {}
        for n in spec.nodes:
            host = by_port.get(n.ssh.port)
            if host is None or host["name"] != n.name:
                raise RuntimeError(f"node {n.name} (SSH port {n.ssh.port}) is not a VM of the VM lab "
                                   f"({', '.join(h['name'] + ':' + str(h['sshPort']) for h in info['hosts'])})")
            targets[n.name] = Target(node=n.name, host=host["sshHost"], port=host["sshPort"], user=host["sshUser"],
                                     host_key=host["hostPublicKey"], key_file=host["sshKeyFile"])
        return cls(targets, failover_cidr, keep_stale_address=keep_stale_address)

    def _vmlab(self, *args: str, timeout: float) -> str:
        proc = subprocess.run([sys.executable, "-m", "vmlab", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"python3 -m vmlab {' '.join(args)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def crash(self, node: str, interface: str) -> None:
        session = self._sessions.pop(node, None)
        self._vmlab("kill", node, timeout=60)
        if session is not None:
            session.close()

    def restore(self, node: str, interface: str, failover_cidr: str, keep_stale_address: bool) -> None:
        """A reboot: /run is empty again, so no stale address or resource-agent state can survive it."""
        if keep_stale_address:
            raise RuntimeError("--keep-stale-address needs a node that did not reboot; a VM lab crash reboots")
        self._vmlab("start", node, timeout=600)

    def probe_command(self, target: str, interval: float, duration: float):
        return None
