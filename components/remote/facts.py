"""Facts: what a server looks like now, read by one shell probe each and parsed into plain data.

A fact is a probe command (built from arguments) and a parser of its exit status and output lines; neither
touches a server, so both are tested with captured outputs (tests/remote/facts/<fact>/<case>.json). Probes
never print secrets: where a key must be compared (xfrm states), the parser keeps only its fingerprint.
"""
import hashlib
import re
import shlex
from typing import Dict, List, Optional


def fingerprint(secret: str) -> str:
    """Short SHA-256 of a key as hex (case and 0x prefix ignored): enough to compare, useless to an attacker
    who does not already hold a random 128+ bit key."""
    text = secret.lower()
    text = text[2:] if text.startswith("0x") else text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


# -- file -------------------------------------------------------------------------------------------------

def file_command(path: str) -> str:
    p = shlex.quote(path)
    return (f"if [ -e {p} ] || [ -L {p} ]; then stat -c '%F|%a|%U|%G|%s' -- {p}; "
            f"if [ -f {p} ]; then sha256sum -- {p} | cut -d' ' -f1; fi; else echo absent; fi")


def file_parse(status: int, lines: List[str]) -> Optional[dict]:
    if status != 0:
        raise ValueError(f"file probe failed with exit status {status}: {' '.join(lines)[:200]}")
    if lines == ["absent"]:
        return None
    kind, mode, owner, group, size = lines[0].split("|")
    kind = "regular file" if kind == "regular empty file" else kind   # GNU stat names a 0-byte file apart
    return {"type": kind, "mode": f"{int(mode, 8):04o}", "owner": owner, "group": group, "size": int(size),
            "sha256": lines[1].strip() if len(lines) > 1 else None}


# -- service ------------------------------------------------------------------------------------------------

def service_command(name: str, pidfile: Optional[str] = None) -> str:
    """With `pidfile`, a sysv service runs when that PID is alive: some LSB scripts (Heartbeat's) answer
    `status` with 0 even when the daemon cannot run."""
    n = shlex.quote(name)
    sysv_status = (f"/etc/init.d/{n} status >/dev/null 2>&1; echo active=$?; " if not pidfile else
                   f"p=$(cat {shlex.quote(pidfile)} 2>/dev/null); "
                   "if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then echo active=0; else echo active=3; fi; ")
    return ("if [ -d /run/systemd/system ]; then echo manager=systemd; "
            f"echo enabled=$(systemctl is-enabled {n} 2>/dev/null); "
            f"systemctl is-active --quiet {n}; echo active=$?; "
            f"elif [ -x /etc/init.d/{n} ]; then echo manager=sysv; e=disabled; "
            f"for l in /etc/rc2.d/S[0-9][0-9]{n}; do [ -e \"$l\" ] && e=enabled; done; echo enabled=$e; "
            f"{sysv_status}"
            "else echo manager=none; fi")


def service_parse(status: int, lines: List[str]) -> dict:
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    manager = values.get("manager")
    if manager not in ("systemd", "sysv", "none"):
        raise ValueError(f"service probe printed no manager line: {' '.join(lines)[:200]}")
    if manager == "none":
        return {"manager": "none", "installed": False, "enabled": False, "running": False}
    enabled = values.get("enabled", "")
    if manager == "systemd" and enabled in ("", "not-found"):
        return {"manager": "systemd", "installed": False, "enabled": False, "running": False}
    # systemd: enabled, enabled-runtime, static, alias count as starting at boot; LSB status 0 is running.
    return {"manager": manager, "installed": True,
            "enabled": enabled in ("enabled", "enabled-runtime", "static", "alias", "generated", "indirect"),
            "running": values.get("active") == "0"}


# -- packages -----------------------------------------------------------------------------------------------

def packages_command(names: List[str]) -> str:
    quoted = " ".join(shlex.quote(n) for n in names)
    return f"dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {quoted} 2>/dev/null; true"


def packages_parse(status: int, lines: List[str]) -> Dict[str, Optional[str]]:
    """{package: installed version}; packages dpkg does not know or that are not fully installed are absent."""
    found = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].strip() == "ii":
            found[parts[0].split(":")[0]] = parts[2]
    return found


# -- xfrm ---------------------------------------------------------------------------------------------------

XFRM_COMMAND = "ip xfrm state; echo '@@policies'; ip xfrm policy"
_ALGO = re.compile(r"^(aead|enc|auth|auth-trunc|comp)\s+(\S+)\s+(0x[0-9a-fA-F]+)(?:\s+(\d+))?")


def _blocks(lines: List[str]) -> List[List[str]]:
    blocks = []
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            blocks.append([line.strip()])
        elif blocks:
            blocks[-1].append(line.strip())
    return blocks


def _words(line: str) -> Dict[str, str]:
    words = line.split()
    return {words[i]: words[i + 1] for i in range(0, len(words) - 1, 2)}


def xfrm_state_entry(block: List[str]) -> dict:
    head = _words(block[0])
    proto = _words(block[1]) if len(block) > 1 else {}
    entry = {"src": head.get("src"), "dst": head.get("dst"), "proto": proto.get("proto"),
             "spi": f"0x{int(proto.get('spi', '0'), 16):08x}", "mode": proto.get("mode"), "algorithms": []}
    for line in block[2:]:
        match = _ALGO.match(line)
        if match:
            kind, name, key, bits = match.groups()
            kind = "auth" if kind == "auth-trunc" else kind
            entry["algorithms"].append({"kind": kind, "name": name, "bits": int(bits) if bits else None,
                                        "key": fingerprint(key)})
    entry["algorithms"].sort(key=lambda a: a["kind"])
    return entry


def xfrm_policy_entry(block: List[str]) -> dict:
    head = _words(block[0])
    direction = _words(block[1]).get("dir") if len(block) > 1 else None
    tmpl = []
    for i, line in enumerate(block):
        if line.startswith("tmpl "):
            t = _words(line[len("tmpl "):])
            detail = _words(block[i + 1]) if i + 1 < len(block) else {}
            tmpl.append({"src": t.get("src"), "dst": t.get("dst"), "proto": detail.get("proto"),
                         "mode": detail.get("mode")})
    return {"src": head.get("src"), "dst": head.get("dst"), "dir": direction, "tmpl": tmpl}


def xfrm_parse(status: int, lines: List[str]) -> dict:
    if status != 0 or "@@policies" not in lines:
        raise ValueError(f"xfrm probe failed (exit {status}): {' '.join(lines)[:200]}")
    cut = lines.index("@@policies")
    states = [xfrm_state_entry(b) for b in _blocks(lines[:cut])]
    # per-socket policies (an IKE daemon's) are not ours: iproute2 prints `socket in|out` on their 2nd line
    policies = [xfrm_policy_entry(b) for b in _blocks(lines[cut + 1:])
                if not any(line.startswith("socket ") for line in b[:2])]
    return {"states": sorted(states, key=lambda s: (s["spi"], s["src"], s["dst"])),
            "policies": sorted(policies, key=lambda p: (p["src"], p["dst"], p["dir"]))}


# -- the resource group --------------------------------------------------------------------------------------

def group_command(script: str, cidr: str, interface: str) -> str:
    """The failover-IP resource script's own `status` (Heartbeat's test of whether the group runs here): the
    address counts only on an interface that is up."""
    return f"{shlex.quote(script)} {shlex.quote(cidr)} {shlex.quote(interface)} status 2>/dev/null"


def group_parse(status: int, lines: List[str]) -> dict:
    word = lines[-1].strip() if lines else ""
    if (status, word) == (0, "running"):
        return {"holds": True}
    if (status, word) == (3, "stopped"):
        return {"holds": False}
    raise ValueError(f"the resource script's status answered {word[:80]!r} with exit status {status}; expected "
                     "running (0) or stopped (3): is it installed?")


# -- drbd ---------------------------------------------------------------------------------------------------

def drbd_command(resource: str, device: str) -> str:
    """DRBD 8.4 as /proc/drbd shows the device's minor, whether metadata exists when the resource is down
    (`drbdadm dump-md` reads it without changing it), and blkid's verdict on the device: exit 2 means no
    signature at all, the only answer that ever allows a mkfs."""
    r, d = shlex.quote(resource), shlex.quote(device)
    minor = re.sub(r"\D", "", device.rsplit("/", 1)[-1]) or "0"
    return (f"if [ -r /proc/drbd ]; then echo loaded=1; sed -n '1s/^version: *\\([0-9.]*\\).*/version=\\1/p' /proc/drbd; "
            f"sed -n 's/^ *{minor}: \\(.*\\)/state=\\1/p' /proc/drbd; else echo loaded=0; fi; "
            f"drbdadm dump-md {r} >/dev/null 2>&1; echo md=$?; "
            f"if [ -b {d} ]; then fs=$(blkid -o value -s TYPE {d} 2>/dev/null); echo blkid=$?; echo fs=$fs; fi; "
            f"grep -q '^{d} ' /proc/mounts && echo mounted=1 || echo mounted=0; "
            # the kernel's last word on this resource's connection: a split brain DRBD left unresolved, or a
            # connection made since (a reboot empties the log, and DRBD meets the split brain again). DRBD 8.4
            # logs a reconnection as `drbd r0: conn( ... -> Connected )`, the end of a resync as
            # `block drbd0: conn( SyncTarget -> Connected )`
            f"dmesg 2>/dev/null | grep -E 'drbd{minor}: Split-Brain detected but unresolved|(drbd {r}|drbd{minor}): "
            f"conn\\( [A-Za-z]+ -> Connected \\)' | tail -n 1 | grep -q Split-Brain && echo splitbrain=1 || "
            f"echo splitbrain=0")


_DRBD_STATE = re.compile(r"cs:(\S+)\s+ro:(\S+)/(\S+)\s+ds:(\S+)/(\S+)")


def drbd_parse(status: int, lines: List[str]) -> dict:
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    if "loaded" not in values:
        raise ValueError(f"drbd probe printed no loaded line: {' '.join(lines)[:200]}")
    fact = {"loaded": values["loaded"] == "1", "version": values.get("version") or None, "up": False,
            "cstate": None, "role": None, "peerRole": None, "disk": None, "peerDisk": None,
            # dump-md answers 20 while the device is attached: metadata is then in use, so present
            "metadata": values.get("md") in ("0", "20"),
            "filesystem": None, "mounted": values.get("mounted") == "1",
            "splitBrain": False}
    match = _DRBD_STATE.search(values.get("state", ""))
    if match and match.group(1) != "Unconfigured":
        fact.update(up=True, cstate=match.group(1), role=match.group(2), peerRole=match.group(3),
                    disk=match.group(4), peerDisk=match.group(5), metadata=True,
                    # a split brain is what keeps the pair apart: once connected again it is resolved
                    splitBrain=values.get("splitbrain") == "1" and match.group(1) == "StandAlone")
    blkid = values.get("blkid")
    if blkid == "0":
        fact["filesystem"] = values.get("fs") or "unknown"
    elif blkid == "2":
        fact["filesystem"] = ""          # verified empty
    return fact


# -- applied configuration (nft table and the like) ----------------------------------------------------------

def listing_command(command: str) -> str:
    """Digest of what a listing command prints (e.g. `nft list table inet ovh_ha`), or `absent`."""
    return f"out=$({command} 2>/dev/null) && printf %s \"$out\" | sha256sum | cut -d' ' -f1 || echo absent"


def listing_parse(status: int, lines: List[str]) -> Optional[str]:
    if not lines or lines[0].strip() == "absent":
        return None
    value = lines[0].strip()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"listing probe printed {value[:80]!r}, expected a sha256 digest")
    return value


# -- registry used by the fixture runner ---------------------------------------------------------------------

FACTS: Dict[str, tuple] = {
    "file": (file_command, file_parse),
    "service": (service_command, service_parse),
    "packages": (packages_command, packages_parse),
    "xfrm": (lambda: XFRM_COMMAND, xfrm_parse),
    "listing": (listing_command, listing_parse),
    "drbd": (drbd_command, drbd_parse),
    "group": (group_command, group_parse),
}


def command_for(fact: str, *args) -> str:
    return FACTS[fact][0](*args)


def parse(fact: str, status: int, lines: List[str]):
    return FACTS[fact][1](status, lines)

