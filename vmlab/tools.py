"""Running the machine's tools with a bound on time, and installing the few Debian packages the lab needs."""
import os
import shutil
import subprocess
import time
from typing import Dict, List, Optional

# command -> Debian package providing it on the machine
REQUIRED_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}
APT_TIMEOUT = 900


class VmLabError(RuntimeError):
    """The VM lab could not do what was asked; the message says why and what to do."""


_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[vmlab {time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def run(argv: List[str], timeout: float, what: str, env: Optional[Dict[str, str]] = None,
        input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run argv to completion; a failure or an overrun raises VmLabError naming `what` and the output's tail."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    except subprocess.TimeoutExpired:
        raise VmLabError(f"{what}: `{argv[0]}` did not finish within {timeout:.0f} s")
    except FileNotFoundError:
        raise VmLabError(f"{what}: `{argv[0]}` is not installed")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-2000:]
        raise VmLabError(f"{what}: `{' '.join(argv[:3])}...` exited {result.returncode}:\n{tail}")
    return result


def missing_tools() -> Dict[str, str]:
    return {tool: pkg for tool, pkg in REQUIRED_TOOLS.items()
            if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}")}


def ensure_tools() -> None:
    """Install the machine-side tools (qemu, debootstrap...) with apt when they are missing."""
    missing = missing_tools()
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise VmLabError(f"missing tools {', '.join(sorted(missing))}; install the Debian packages "
                         f"{' '.join(packages)} (as root: apt-get install {' '.join(packages)})")
    say(f"installing {' '.join(packages)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "--no-remove", *packages],
        APT_TIMEOUT, "installing the VM lab's tools", env=env)
    still = missing_tools()
    if still:
        raise VmLabError(f"apt-get installed {' '.join(packages)} but {', '.join(sorted(still))} "
                         f"is still not in PATH")


def require_root() -> None:
    if os.geteuid() != 0:
        raise VmLabError("run as root: debootstrap and chroot build the base image")
