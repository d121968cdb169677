"""Debian packages the lab hosts need, installed on the machine (the hosts share its /usr) without ever
starting a service on the machine itself and without removing anything."""
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Set, Tuple

# package -> why the lab needs it
REQUIRED = {
    "openssh-server": "each host's sshd",
    "openssh-client": "ssh-keygen for the lab's keys",
    "iproute2": "namespaces, veths, bridge, addresses, xfrm",
    "util-linux": "unshare and nsenter",
    "iputils-ping": "reachability probes from the hosts and from outside",
    "python3": "the hosts' init and the SSH forwarder (stdlib only)",
    "nftables": "the cluster firewall",
    "drbd-utils": "drbdadm (configs are parsed; this kernel has no DRBD module)",
    "heartbeat": "the cluster manager",
    "bsd-mailx": "the `mail` command Heartbeat's MailTo calls",
}
# bsd-mailx needs some MTA; when the machine has none, msmtp-mta is the smallest one (no daemon).
MTA_FALLBACK = "msmtp-mta"
# daemons a package's maintainer scripts could start; none may be left running on the machine by an install
WATCHED_DAEMONS = ("sshd", "heartbeat", "msmtpd", "exim4", "postfix")
POLICY = Path("/usr/sbin/policy-rc.d")
APT_TIMEOUT = 900
POLICY_DENY = "#!/bin/sh\n# written by the ovh-ha-cluster netns lab while it installs packages\nexit 101\n"


class PackageError(RuntimeError):
    """The lab's packages are missing and could not be installed; the message says what to do."""


def installed(package: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package],
                             capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise PackageError("dpkg-query not found: the lab installs its hosts' software as Debian packages and "
                           f"needs a Debian-based machine with dpkg and apt (packages: {' '.join(REQUIRED)})")
    return out.returncode == 0 and out.stdout.strip() == "installed"


# packages whose job any provider of the same command does (e.g. an inetutils ping already on the machine)
SATISFIED_BY_COMMAND = {"iputils-ping": "ping"}


def missing_packages() -> List[str]:
    missing = [name for name in REQUIRED
               if not installed(name) and not (name in SATISFIED_BY_COMMAND
                                               and shutil.which(SATISFIED_BY_COMMAND[name]))]
    if "bsd-mailx" in missing and not Path("/usr/sbin/sendmail").exists():
        missing.append(MTA_FALLBACK)
    return missing


def _policy_denies() -> bool:
    if not os.access(POLICY, os.X_OK):
        return False
    result = subprocess.run([str(POLICY), "ssh", "start"], capture_output=True)
    return result.returncode == 101


def _daemons_in_root_namespaces() -> Set[Tuple[int, str]]:
    """(pid, name) of watched daemons running in the machine's own network and PID namespaces."""
    # this process runs in the machine's namespaces (/proc/1 may be unreadable, e.g. in a micro-VM)
    root_net, root_pid = os.stat("/proc/self/ns/net").st_ino, os.stat("/proc/self/ns/pid").st_ino
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            if comm not in WATCHED_DAEMONS:
                continue
            if (os.stat(f"/proc/{entry}/ns/net").st_ino, os.stat(f"/proc/{entry}/ns/pid").st_ino) \
                    == (root_net, root_pid):
                found.add((int(entry), comm))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def _apt_install(missing: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "--no-remove",
            "-o", "Dpkg::Options::=--force-confold", *missing]
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PackageError(f"apt-get install {' '.join(missing)} did not finish within {APT_TIMEOUT} s; "
                           "check the machine's network to the Debian mirror, then run `lab up` again")


def ensure(say: Callable[[str], None]) -> List[str]:
    """Install what is missing; returns the packages installed (empty when nothing was to do)."""
    missing = missing_packages()
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise PackageError(f"Debian packages missing ({' '.join(missing)}) and no apt-get in PATH to install "
                           f"them; install them with the machine's package manager, then run `lab up` again")
    say(f"installing Debian packages: {' '.join(missing)}")
    before = _daemons_in_root_namespaces()
    saved = None
    if not _policy_denies():
        # a policy-rc.d that denies every start keeps invoke-rc.d from starting the new daemons here
        if POLICY.exists():
            saved = POLICY.with_name("policy-rc.d.netns-lab-saved")
            os.replace(POLICY, saved)
        POLICY.write_text(POLICY_DENY)
        POLICY.chmod(0o755)
        wrote_policy = True
    else:
        wrote_policy = False
    env: Dict[str, str] = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    try:
        result = _apt_install(missing, env)
    finally:
        if wrote_policy:
            POLICY.unlink()
            if saved is not None:
                os.replace(saved, POLICY)
    if result.returncode != 0:
        problems = [line for line in result.stderr.splitlines() if line.startswith("E:")] or \
            result.stderr.strip().splitlines()[-5:]
        raise PackageError(f"apt-get install {' '.join(missing)} failed (exit {result.returncode}): "
                           f"{' / '.join(problems) or 'no error output'}; fix apt (e.g. `apt-get update`, network "
                           f"to the Debian mirror) or install these packages by hand, then run `lab up` again")
    started = _daemons_in_root_namespaces() - before
    for pid, name in sorted(started):
        # started by this very install despite the policy: ours to stop
        say(f"stopping {name} (pid {pid}) that the install started on the machine")
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    still = [name for name in missing if not installed(name)]
    if still:
        raise PackageError(f"apt-get finished but {' '.join(still)} is still not installed; see "
                           f"`apt-cache policy {' '.join(still)}`")
    return missing
