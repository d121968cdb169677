"""Cutting the link between the VMs while both keep running: a network partition.

The link is UDP on the machine's loopback (vmlab/README.md, Topology), so a drop rule in a table of its own
silences it both ways; the guests' NICs keep their carrier, as when a switch between two servers fails.
Nothing else on loopback is touched, and `down` removes the table."""
import subprocess

from .layout import VMS
from .tools import VmLabError

TABLE = "inet vmlab_link"


def _nft(script: str, what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True, timeout=30)
    if result.returncode != 0:
        raise VmLabError(f"{what}: nft: {result.stderr.strip()}")
    return result


def cut() -> None:
    ports = ", ".join(str(vm.link_port) for vm in VMS)
    _nft(f"table {TABLE}\ndelete table {TABLE}\n"
         f"table {TABLE} {{\n  chain output {{\n    type filter hook output priority filter; policy accept;\n"
         f"    oif \"lo\" udp sport {{ {ports} }} udp dport {{ {ports} }} counter drop\n  }}\n}}\n",
         "cutting the link between the VMs")


def restore() -> bool:
    """True when the link was cut."""
    was = is_cut()
    if was:
        _nft(f"delete table {TABLE}\n", "restoring the link between the VMs")
    return was


def is_cut() -> bool:
    result = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True, timeout=30)
    return result.returncode == 0

