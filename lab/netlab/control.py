"""up / down / status / run of the netns lab; the CLI in lab/lab.py only parses arguments and calls these."""
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional

from lab.netlab import hostmail, packages, procs
from lab.netlab import topology as topo
from lab.netlab.hostfs import HostFiles, keygen, public_key
from lab.netlab.network import NETNS_DIR, Network, lab_netns, netns_exists
from lab.netlab.state import Layout, Record, locked, write_private

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"      # the system interpreter: the hosts replace /root, where pyenv/venvs may live
HOSTINIT = HERE / "hostinit.py"
FORWARD = HERE / "forward.py"
BOOT_TIMEOUT = 15.0
SSH_TIMEOUT = 15.0
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
RUN_FAILED = 125   # exit status of `run` when the lab, not the command, failed (as env(1) and docker run do)


class LabError(Exception):
    """A problem the operator can fix; the message says how."""


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (network namespaces, mounts, packages); run it as root")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


def ssh_answers(host: topo.Host, timeout: float = 2.0) -> bool:
    """True when the host's sshd sends its banner through the forwarder."""
    try:
        with socket.create_connection((topo.SSH_LISTEN, host.ssh_port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def foreign_owners(names: List[str]) -> List[str]:
    """State dirs of other netns labs whose processes live in these namespaces (read from their command lines)."""
    inodes = {procs.namespace_inode(NETNS_DIR / name) for name in names} - {None}
    owners = []
    for pid in procs.pids_in_namespaces({"net": inodes}):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--hide" in argv[:-1] and any(arg.endswith(b"hostinit.py") for arg in argv):
            owner = argv[argv.index(b"--hide") + 1].decode(errors="replace")
            if owner not in owners:
                owners.append(owner)
    return owners


def foreign_message(names: List[str], state: Path) -> str:
    owners = foreign_owners(names)
    who = (f"they belong to the netns lab with state dir {', '.join(owners)} (one lab per machine: the names, "
           f"addresses and ports are fixed); bring it down with `LAB_STATE={owners[0]} lab/lab.py down` or wait "
           "for it to finish") if owners else (
           "another lab (another LAB_STATE) or something else uses these names; bring that lab down, or remove "
           "them with `ip netns del NAME` if they are stale")
    return f"network namespace(s) {', '.join(names)} exist but this lab (state dir {state}) did not create them: {who}"


class Lab:
    def __init__(self, layout: Layout, say: Callable[[str], None] = print):
        self.layout = layout
        self.say = say

    # ---------------------------------------------------------------- up
    def up(self) -> List[str]:
        """Bring the lab up or repair it; returns what changed (empty: it was already up)."""
        require_root("lab up")
        with locked(self.layout):
            try:
                changes = [f"installed {name}" for name in packages.ensure(self.say)]
            except packages.PackageError as error:
                raise LabError(str(error))
            record = Record(self.layout)
            network = Network(record, self.say)
            foreign = network.foreign_namespaces()
            if foreign:
                raise LabError(foreign_message(foreign, self.layout.root))
            if keygen(self.layout.client_key, "ovh-ha-cluster-lab"):
                changes.append("generated the lab SSH client key")
                self.say(f"generated the lab SSH client key {self.layout.client_key}")
            client_key = public_key(self.layout.client_key.with_name("id_ed25519.pub"))
            changes += network.ensure()
            for host in topo.HOSTS:
                changes += self._ensure_host(record, host, client_key)
            changes += self._ensure_forwarder(record)
            changes += self._ensure_mail(record)
            self._wait_ssh()
            if self._write_outputs():
                changes.append(f"wrote {self.layout.hosts_json}")
        if changes:
            self.say(f"lab up ({len(changes)} change{'s' if len(changes) > 1 else ''}); hosts: {self.layout.hosts_json}")
        else:
            self.say("lab already up: nothing changed")
        return changes

    def _ensure_host(self, record: Record, host: topo.Host, client_key: str) -> List[str]:
        files = HostFiles(self.layout, host)
        role = f"host:{host.name}"
        entry = record.process(role)
        if procs.alive(entry):
            if procs.namespace_inode(entry["pid"]) == procs.namespace_inode(NETNS_DIR / host.name):
                return ["authorized the new client key on " + host.name] if files.authorize(client_key) else []
            self.say(f"{host.name}: running in a stale network namespace, restarting it")
            self._stop_host(record, host)
        elif entry:
            self.say(f"{host.name}: recorded init (pid {entry['pid']}) is gone, starting the host again")
        self._stop_host(record, host)   # clears stale records, waits for a dying wrapper
        made = files.prepare(client_key)
        if made:
            self.say(f"{host.name}: prepared {', '.join(made)}")
        files.reset_volatile()
        self._boot(record, host, files)
        return [f"started {host.name}"]

    def _boot(self, record: Record, host: topo.Host, files: HostFiles) -> None:
        argv = ["nsenter", f"--net={NETNS_DIR / host.name}",
                "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--propagation", "private",
                PYTHON, "-I", "-B", str(HOSTINIT), "--name", host.name, "--dir", str(files.dir),
                "--hide", str(self.layout.root)]
        with open(files.console, "ab") as console:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=ENV, cwd="/")
        wrapper = procs.identity(proc.pid)
        if wrapper:
            record.set_process(f"wrapper:{host.name}", wrapper)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not files.boot.exists():
            if proc.poll() is not None:
                raise LabError(f"{host.name} failed to boot (exit {proc.returncode}); {files.console}:\n"
                               f"{_tail(files.console)}")
            if time.monotonic() > deadline:
                raise LabError(f"{host.name} did not boot within {BOOT_TIMEOUT:.0f} s; {files.console}:\n"
                               f"{_tail(files.console)}")
            time.sleep(0.05)
        boot = json.loads(files.boot.read_text())
        init = {"pid": boot["pid"], "start": boot["start"]}
        if procs.parent(init["pid"]) != proc.pid or not procs.alive(init):
            raise LabError(f"{host.name}: the boot report names pid {init['pid']}, which is not the host's init")
        record.set_process(f"host:{host.name}", init)
        self.say(f"{host.name}: booted (init pid {init['pid']})")

    def _stop_host(self, record: Record, host: topo.Host) -> bool:
        stopped = procs.stop(record.process(f"host:{host.name}"))
        record.drop_process(f"host:{host.name}")
        wrapper = record.process(f"wrapper:{host.name}")
        deadline = time.monotonic() + 3.0
        while procs.alive(wrapper) and time.monotonic() < deadline:
            time.sleep(0.05)      # unshare leaves as soon as the init it waits for is gone
        procs.stop(wrapper)
        record.drop_process(f"wrapper:{host.name}")
        return stopped

    def _forward_rules(self) -> List[str]:
        rules = [f"root,{topo.SSH_LISTEN},{h.ssh_port},{NETNS_DIR / topo.OUTSIDE},{h.address},22"
                 for h in topo.HOSTS]
        for port in topo.machine_ports():
            rules += [f"{NETNS_DIR / h.name},127.0.0.1,{port},root,127.0.0.1,{port}" for h in topo.HOSTS]
        return rules

    def _namespace_inodes(self) -> dict:
        return {name: procs.namespace_inode(NETNS_DIR / name) for name in lab_netns()}

    def _ensure_forwarder(self, record: Record) -> List[str]:
        rules = self._forward_rules()
        inodes = self._namespace_inodes()
        entry = record.process("forwarder")
        if procs.alive(entry) and entry.get("rules") == rules and entry.get("netns") == inodes:
            return []
        if procs.alive(entry):
            self.say("forwarder: namespaces or ports changed, restarting it")
        procs.stop(entry)
        record.drop_process("forwarder")
        ready = self.layout.hosts / "forwarder.ready"
        ready.unlink(missing_ok=True)
        argv = [PYTHON, "-I", "-B", str(FORWARD), "--ready-file", str(ready)]
        for rule in rules:
            argv += ["--rule", rule]
        with open(self.layout.forwarder_log, "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=ENV, cwd="/")
        identity = procs.identity(proc.pid)
        record.set_process("forwarder", {**identity, "rules": rules, "netns": inodes})
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None:
                record.drop_process("forwarder")
                raise LabError(f"the forwarder failed (exit {proc.returncode}); {self.layout.forwarder_log}:\n"
                               f"{_tail(self.layout.forwarder_log, 5)}")
            if time.monotonic() > deadline:
                raise LabError(f"the forwarder did not start within {BOOT_TIMEOUT:.0f} s")
            time.sleep(0.05)
        ports = ", ".join(f"{topo.SSH_LISTEN}:{h.ssh_port} -> {h.name}:22" for h in topo.HOSTS)
        self.say(f"forwarder: {ports} (pid {proc.pid})")
        return ["started the forwarder"]

    def _ensure_mail(self, record: Record) -> List[str]:
        """Each host's msmtp delivers to the mail sink (lab/mail_sink); says so when the machine's MTA will not."""
        changes = []
        for host in topo.HOSTS:
            if hostmail.write_msmtprc(record.process(f"host:{host.name}")["pid"], host.name):
                changes.append(f"wrote {hostmail.MSMTPRC} on {host.name}")
                self.say(f"{host.name}: wrote {hostmail.MSMTPRC} (mail goes to the lab mail sink, "
                         f"127.0.0.1:{topo.MAIL_SINK_PORT})")
        for problem in hostmail.problems(topo.machine_ports()):
            self.say(f"warning: {problem}")
        return changes

    def _wait_ssh(self) -> None:
        deadline = time.monotonic() + SSH_TIMEOUT
        for host in topo.HOSTS:
            while not ssh_answers(host, timeout=1.0):
                if time.monotonic() > deadline:
                    raise LabError(f"{host.name}: sshd does not answer on {topo.SSH_LISTEN}:{host.ssh_port} after "
                                   f"{SSH_TIMEOUT:.0f} s; {HostFiles(self.layout, host).console}:\n"
                                   f"{_tail(HostFiles(self.layout, host).console)}")
                time.sleep(0.1)

    def describe(self) -> dict:
        """The content of hosts.json: what the lab stack and the tests read."""
        hosts = []
        for host in topo.HOSTS:
            hosts.append({
                "name": host.name,
                "netns": host.name,
                "address": host.address,
                "interface": topo.HOST_INTERFACE,
                "sshHost": topo.SSH_LISTEN,
                "sshPort": host.ssh_port,
                "sshUser": topo.SSH_USER,
                "sshKeyFile": str(self.layout.client_key),
                "hostPublicKey": HostFiles(self.layout, host).host_public_key(),
            })
        return {
            "lab": topo.LAB_MARK,
            "stateDir": str(self.layout.root),
            "network": topo.NETWORK,
            "gateway": topo.GATEWAY,
            "failoverNetwork": topo.FAILOVER_NETWORK,
            "outside": {"netns": topo.OUTSIDE, "bridge": topo.BRIDGE, "address": topo.GATEWAY},
            "sshKeyFile": str(self.layout.client_key),
            "knownHostsFile": str(self.layout.known_hosts),
            "machinePorts": topo.machine_ports(),
            "hosts": hosts,
        }

    def _write_outputs(self) -> bool:
        info = self.describe()
        changed = write_private(self.layout.hosts_json, json.dumps(info, indent=2) + "\n", 0o644)
        known = "".join(f"[{h['sshHost']}]:{h['sshPort']} {h['hostPublicKey']}\n" for h in info["hosts"])
        changed |= write_private(self.layout.known_hosts, known, 0o644)
        config = "".join(
            f"Host {h['name']}\n  HostName {h['sshHost']}\n  Port {h['sshPort']}\n  User {h['sshUser']}\n"
            f"  IdentityFile {h['sshKeyFile']}\n  IdentitiesOnly yes\n  UserKnownHostsFile {self.layout.known_hosts}\n"
            f"  StrictHostKeyChecking yes\n" for h in info["hosts"])
        changed |= write_private(self.layout.ssh_config, config, 0o644)
        return changed

    # ---------------------------------------------------------------- down
    def down(self, purge: bool = False) -> List[str]:
        """Stop what this lab started and delete its namespaces; returns what it did (empty: already down)."""
        require_root("lab down")
        done = []
        with locked(self.layout):
            record = Record(self.layout)
            inodes = {"net": {i for i in self._namespace_inodes().values() if i}}
            for host in topo.HOSTS:
                if self._stop_host(record, host):
                    done.append(f"stopped {host.name}")
                    self.say(f"{host.name}: stopped")
            if procs.stop(record.process("forwarder")):
                done.append("stopped the forwarder")
                self.say("forwarder: stopped")
            record.drop_process("forwarder")
            for name, data in list(record.data["processes"].items()):   # roles of an older layout, if any
                procs.stop(data)
                record.drop_process(name)
            users = [pid for pid in procs.pids_in_namespaces(inodes) if pid != os.getpid()]
            if users and record.netns:
                self.say(f"processes not started by the lab still use its namespaces (left alone): {users}")
            for name in Network(record, self.say).teardown():
                done.append(f"deleted network namespace {name}")
                self.say(f"deleted network namespace {name}")
            for name in lab_netns():
                if netns_exists(name):
                    self.say(f"network namespace {name} exists but was not created by this lab: not touching it")
            self.layout.hosts_json.unlink(missing_ok=True)
            if purge:
                for path in self.layout.owned():
                    if path == self.layout.lock:
                        continue
                    if path.is_dir():
                        shutil.rmtree(path)
                        done.append(f"removed {path}")
                    elif path.exists():
                        path.unlink()
                        done.append(f"removed {path}")
        self.say("lab down" if done else "lab already down: nothing to do")
        return done

    # ---------------------------------------------------------------- status
    def status(self) -> int:
        """Print what is up; 0 when the whole lab is up, 3 when nothing is, 1 when it is partly up."""
        record = Record(self.layout)
        checks = []
        self.say(f"state dir: {self.layout.root}")
        for name in lab_netns():
            present = netns_exists(name)
            owner = "" if not present or name in record.netns else " (not created by this lab)"
            self.say(f"network namespace {name}: {'present' if present else 'absent'}{owner}")
            checks.append(present and name in record.netns)
        for host in topo.HOSTS:
            entry = record.process(f"host:{host.name}")
            running = procs.alive(entry)
            answers = running and ssh_answers(host)
            state = (f"running (init pid {entry['pid']}), ssh {topo.SSH_USER}@{topo.SSH_LISTEN}:{host.ssh_port} "
                     f"{'answers' if answers else 'does not answer'}") if running else "stopped"
            self.say(f"host {host.name} ({host.address}): {state}")
            checks.append(bool(answers))
        if netns_exists(topo.OUTSIDE):
            routes = Network(record, self.say).failover_routes()
            self.say(f"failover IPs: {topo.FAILOVER_NETWORK} on-link from {topo.OUTSIDE}"
                     + (f"; routed: {', '.join(routes)}" if routes else ""))
        forwarder = record.process("forwarder")
        self.say(f"forwarder: {'running (pid %d)' % forwarder['pid'] if procs.alive(forwarder) else 'stopped'}")
        checks.append(procs.alive(forwarder))
        if all(checks):
            self.say(f"lab: up ({self.layout.hosts_json})")
            return 0
        if not any(checks):
            self.say("lab: down")
            return 3
        self.say("lab: partly up; `lab/lab.py up` repairs it, `lab/lab.py down` clears it")
        return 1

    # ---------------------------------------------------------------- route
    def route(self, address: str, via: str) -> str:
        """Point OUTSIDE's route for one failover IP at a host (as OVH routes it to a server) or back on-link."""
        require_root("lab route")
        with locked(self.layout):
            result = Network(Record(self.layout), self.say).route_failover(address, via)
        self.say(result)
        return result

    # ---------------------------------------------------------------- run
    def run_argv(self, name: str, command: List[str]) -> List[str]:
        """The nsenter command line that runs command inside host NAME (or in OUTSIDE's network)."""
        if not command:
            raise LabError("run: no command given; usage: lab/run HOST COMMAND [ARG...]")
        if name == topo.OUTSIDE:
            if not netns_exists(topo.OUTSIDE):
                raise LabError(f"run: network namespace {topo.OUTSIDE} does not exist; run `lab/lab.py up`")
            return ["nsenter", f"--net={NETNS_DIR / topo.OUTSIDE}", "--", *command]
        names = [h.name for h in topo.HOSTS]
        if name not in names:
            raise LabError(f"run: unknown host {name!r}; expected one of {', '.join(names + [topo.OUTSIDE])}")
        entry = Record(self.layout).process(f"host:{name}")
        if not procs.alive(entry):
            raise LabError(f"run: host {name} is not running (state dir {self.layout.root}); run `lab/lab.py up`")
        return ["nsenter", f"--target={entry['pid']}", "--net", "--mount", "--uts", "--ipc", "--pid",
                "--wdns=/root", "--", *command]

    def run(self, name: str, command: List[str], term: Optional[str] = None) -> None:
        """Replace this process with the command inside the host: its status and output are the command's."""
        require_root("lab run")
        argv = self.run_argv(name, command)
        env = {**ENV, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"}
        if term:
            env["TERM"] = term
        os.chdir("/")
        os.execvpe(argv[0], argv, env)
