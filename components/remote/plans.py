"""Plans: desired state + observed fact -> the steps that close the gap, and nothing when there is none.

Pure functions, tested with fixtures (tests/remote/plans/<plan>/<case>.json). A step is a dict: {"run": cmd}
for a shell command, {"put": path, ...} for a file upload, {"batch": [lines]} for `ip -batch -` input given
on stdin (key placeholders are filled by the provider, so plans and their fixtures never hold a key).
"""
import shlex
from typing import Dict, Iterable, List, Optional

from components.remote.facts import fingerprint

Step = Dict[str, object]


class PlanError(ValueError):
    """The server is in a state we must not paper over (the message says which and what to do)."""


# -- file -------------------------------------------------------------------------------------------------

def plan_file(desired: dict, fact: Optional[dict]) -> List[Step]:
    path = desired["path"]
    q = shlex.quote(path)
    if not desired.get("present", True):
        return [] if fact is None else [{"run": f"rm -f -- {q}"}]
    if fact is not None and fact["type"] != "regular file":
        raise PlanError(f"{path} is a {fact['type']} on the server, not a regular file; move it away by hand "
                        f"if it should be replaced (nothing was changed)")
    if fact is None or fact["sha256"] != desired["sha256"]:
        return [{"put": path, "mode": desired["mode"], "owner": desired["owner"], "group": desired["group"]}]
    steps = []
    if (fact["owner"], fact["group"]) != (desired["owner"], desired["group"]):
        steps.append({"run": f"chown {shlex.quote(desired['owner'])}:{shlex.quote(desired['group'])} -- {q}"})
    if fact["mode"] != desired["mode"]:
        steps.append({"run": f"chmod {desired['mode']} -- {q}"})
    return steps


# -- service ------------------------------------------------------------------------------------------------

def _service_cmd(manager: str, name: str, action: str) -> str:
    n = shlex.quote(name)
    if manager == "systemd":
        return f"systemctl {action} {n}"
    if action == "enable":
        return f"update-rc.d {n} defaults >/dev/null && update-rc.d {n} enable"
    if action == "disable":
        return f"update-rc.d {n} disable"
    return f"/etc/init.d/{n} {action}"


def plan_service(desired: dict, fact: dict, restart: bool = False, reload: bool = False) -> List[Step]:
    """`restart`: a file the service reads only at start changed; `reload`: a file it re-reads on reload
    changed (Heartbeat's `reload` restarts it keeping its resources: no failover for an ha.cf change)."""
    name = desired["name"]
    if not fact["installed"]:
        raise PlanError(f"service {name} is not installed (no systemd unit, no /etc/init.d/{name}); "
                        f"install its package first")
    manager = fact["manager"]
    steps = []
    if desired.get("enabled") is not None and desired["enabled"] != fact["enabled"]:
        steps.append({"run": _service_cmd(manager, name, "enable" if desired["enabled"] else "disable")})
    if desired["running"] and not fact["running"]:
        steps.append({"run": _service_cmd(manager, name, "start")})
    elif desired["running"] and restart:
        steps.append({"run": _service_cmd(manager, name, "restart")})
    elif desired["running"] and reload:
        steps.append({"run": _service_cmd(manager, name, "reload")})
    elif not desired["running"] and fact["running"]:
        steps.append({"run": _service_cmd(manager, name, "stop")})
    return steps


# -- packages -----------------------------------------------------------------------------------------------

def plan_packages(names: Iterable[str], fact: Dict[str, str]) -> List[Step]:
    missing = sorted(n for n in set(names) if n not in fact)
    if not missing:
        return []
    return [{"run": "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -- "
                    + " ".join(shlex.quote(n) for n in missing)}]


# -- xfrm ---------------------------------------------------------------------------------------------------

def _pairs(words: List[str]) -> Dict[str, str]:
    return {words[i]: words[i + 1] for i in range(0, len(words) - 1, 2)}


def desired_xfrm(commands: List[List[str]], keys: Optional[Dict[str, str]] = None) -> dict:
    """The entries `ip xfrm state`/`policy` would print after running these argv lists (from the renderer,
    key placeholders included); with `keys` ({placeholder: 0xhex}) the key fingerprints are filled in."""
    states, policies = [], []
    for argv in commands:
        words = argv[1:] if argv[0] == "ip" else argv
        obj, verb, rest = words[1], words[2], words[3:]
        if obj == "state" and verb == "add":
            algos = []
            i = rest.index("mode") + 2
            head = _pairs(rest[:i])
            while i < len(rest):
                kind = rest[i]
                if kind in ("aead", "auth-trunc"):
                    name, key, bits = rest[i + 1:i + 4]
                    i += 4
                else:
                    name, key, bits = rest[i + 1], rest[i + 2], None
                    i += 3
                value = (keys or {}).get(key, key)
                algos.append({"kind": "auth" if kind == "auth-trunc" else kind, "name": name,
                              "bits": int(bits) if bits else None,
                              "key": fingerprint(value) if keys is not None else key})
            states.append({"src": head["src"], "dst": head["dst"], "proto": head["proto"],
                           "spi": f"0x{int(head['spi'], 16):08x}", "mode": head["mode"],
                           "algorithms": sorted(algos, key=lambda a: a["kind"])})
        elif obj == "policy" and verb in ("add", "update"):
            t = rest.index("tmpl")
            head, tmpl = _pairs(rest[:t]), _pairs(rest[t + 1:])
            policies.append({"src": head["src"], "dst": head["dst"], "dir": head["dir"],
                             "tmpl": [{"src": tmpl["src"], "dst": tmpl["dst"], "proto": tmpl["proto"],
                                       "mode": tmpl["mode"]}]})
    return {"states": sorted(states, key=lambda s: (s["spi"], s["src"], s["dst"])),
            "policies": sorted(policies, key=lambda p: (p["src"], p["dst"], p["dir"]))}


def _state_id(s: dict) -> tuple:
    return (s["src"], s["dst"], s["proto"], s["spi"])


def _policy_id(p: dict) -> tuple:
    return (p["src"], p["dst"], p["dir"])


def _state_add(s: dict, placeholders: Dict[str, str]) -> str:
    words = ["xfrm", "state", "add", "src", s["src"], "dst", s["dst"], "proto", s["proto"], "spi", s["spi"],
             "mode", s["mode"]]
    for a in s["algorithms"]:
        kind = "auth-trunc" if a["kind"] == "auth" and a["bits"] else a["kind"]
        words += [kind, a["name"], placeholders[s["spi"] + ":" + a["kind"]]]
        if a["bits"]:
            words.append(str(a["bits"]))
    return " ".join(words)


def _policy_line(verb: str, p: dict) -> str:
    words = ["xfrm", "policy", verb, "src", p["src"], "dst", p["dst"], "dir", p["dir"]]
    for t in p["tmpl"]:
        words += ["tmpl", "src", t["src"], "dst", t["dst"], "proto", t["proto"], "mode", t["mode"]]
    return " ".join(words)


def owned_entries(fact: dict, desired: dict, previously: Optional[dict] = None) -> dict:
    """The observed entries this resource answers for: same SA ids or policy selectors as what is desired
    now or was recorded before. Anything else in the kernel (other tunnels) is not ours to touch."""
    state_ids = {_state_id(s) for s in desired["states"]} | {_state_id(s) for s in (previously or {}).get("states", [])}
    policy_ids = {_policy_id(p) for p in desired["policies"]} | \
        {_policy_id(p) for p in (previously or {}).get("policies", [])}
    return {"states": [s for s in fact["states"] if _state_id(s) in state_ids],
            "policies": [p for p in fact["policies"] if _policy_id(p) in policy_ids]}


def plan_xfrm(desired: dict, observed: dict, placeholders: Dict[str, str]) -> List[Step]:
    """`desired` carries key fingerprints; `placeholders` maps "<spi>:<kind>" to the placeholder the provider
    replaces with the key. The kernel cannot re-key an SA in place: a changed SA is deleted and re-added."""
    lines_first, lines_states, lines_policies = [], [], []
    seen_states = {_state_id(s): s for s in observed["states"]}
    seen_policies = {_policy_id(p): p for p in observed["policies"]}
    want_states = {_state_id(s) for s in desired["states"]}
    want_policies = {_policy_id(p) for p in desired["policies"]}
    for pid, p in sorted(seen_policies.items()):
        if pid not in want_policies:
            lines_first.append(f"xfrm policy delete src {p['src']} dst {p['dst']} dir {p['dir']}")
    for sid, s in sorted(seen_states.items()):
        if sid not in want_states:
            lines_first.append(f"xfrm state delete src {s['src']} dst {s['dst']} proto {s['proto']} spi {s['spi']}")
    for s in desired["states"]:
        current = seen_states.get(_state_id(s))
        if current == s:
            continue
        if current is not None:
            lines_states.append(f"xfrm state delete src {s['src']} dst {s['dst']} proto {s['proto']} spi {s['spi']}")
        lines_states.append(_state_add(s, placeholders))
    for p in desired["policies"]:
        if seen_policies.get(_policy_id(p)) != p:
            lines_policies.append(_policy_line("update", p))
    lines = lines_first + lines_states + lines_policies
    return [{"batch": lines}] if lines else []


def remove_xfrm(observed: dict) -> List[Step]:
    """Everything this resource owns, policies first so no traffic is left demanding a missing SA."""
    lines = [f"xfrm policy delete src {p['src']} dst {p['dst']} dir {p['dir']}" for p in observed["policies"]]
    lines += [f"xfrm state delete src {s['src']} dst {s['dst']} proto {s['proto']} spi {s['spi']}"
              for s in observed["states"]]
    return [{"batch": lines}] if lines else []


# -- applied configuration ----------------------------------------------------------------------------------

def plan_applied(apply: str, recorded: Optional[str], observed: Optional[str], changed_inputs: bool) -> List[Step]:
    """Re-apply when the inputs changed or what the server lists differs from what it listed after the last
    apply (someone edited it by hand)."""
    if changed_inputs or observed is None or observed != recorded:
        return [{"run": apply}]
    return []


# -- drift, as `pulumi refresh` records it and the next plan shows it ----------------------------------------

def drift_file(desired: dict, fact: Optional[dict]) -> Optional[str]:
    if fact is None:
        return "missing on the server"
    notes = []
    if fact.get("sha256") != desired["sha256"]:
        notes.append(f"content changed on the server (sha256 {str(fact.get('sha256'))[:12]}, "
                     f"declared {desired['sha256'][:12]})")
    if fact["mode"] != desired["mode"]:
        notes.append(f"mode {fact['mode']} on the server, declared {desired['mode']}")
    if (fact["owner"], fact["group"]) != (desired["owner"], desired["group"]):
        notes.append(f"owner {fact['owner']}:{fact['group']} on the server, declared "
                     f"{desired['owner']}:{desired['group']}")
    return "; ".join(notes) or None


def drift_service(desired: dict, fact: dict) -> Optional[str]:
    if not fact.get("installed"):
        return "not installed on the server"
    notes = []
    if fact["running"] != desired["running"]:
        notes.append("running on the server, declared stopped" if fact["running"]
                     else "stopped on the server, declared running")
    if desired.get("enabled") is not None and fact["enabled"] != desired["enabled"]:
        notes.append("enabled at boot on the server, declared disabled" if fact["enabled"]
                     else "disabled at boot on the server, declared enabled")
    return "; ".join(notes) or None


def drift_packages(names: Iterable[str], fact: Dict[str, str]) -> Optional[str]:
    missing = sorted(n for n in set(names) if n not in fact)
    return f"not installed on the server: {', '.join(missing)}" if missing else None


def _label_state(s: dict) -> str:
    return f"SA {s['src']}->{s['dst']} spi {s['spi']}"


def _label_policy(p: dict) -> str:
    return f"policy {p['dir']} {p['src']}->{p['dst']}"


def drift_xfrm(desired: dict, observed: dict) -> Optional[str]:
    notes = []
    for kind, ident, label, differs in (("states", _state_id, _label_state, "differs (algorithm or key)"),
                                        ("policies", _policy_id, _label_policy, "differs")):
        seen = {ident(e): e for e in observed[kind]}
        wanted = {ident(e) for e in desired[kind]}
        for entry in desired[kind]:
            current = seen.get(ident(entry))
            if current is None:
                notes.append(f"{label(entry)} missing")
            elif current != entry:
                notes.append(f"{label(entry)} {differs}")
        notes += [f"{label(e)} no longer declared" for i, e in sorted(seen.items()) if i not in wanted]
    return "; ".join(notes) or None


def drift_applied(recorded: Optional[str], observed: Optional[str]) -> Optional[str]:
    if observed is None:
        return "not loaded on the server"
    if observed != recorded:
        return "changed on the server since it was loaded"
    return None


# -- drbd ---------------------------------------------------------------------------------------------------

def plan_drbd(desired: dict, fact: dict, promoted_here: bool = False) -> List[Step]:
    """One step towards the declared DRBD resource; the provider probes again after each and stops when
    this returns []. Heartbeat owns the roles at run time: we promote only the declared initial primary, only
    for the very first sync of a never-synced pair, and demote only what we promoted ourselves.

    Nothing here can destroy data: `create-md` runs with stdin at /dev/null, so drbdmeta's "type yes to
    overwrite" questions (existing metadata, an existing filesystem) answer no; `mkfs` runs only on the
    initial primary, only when blkid verified the device carries no signature at all."""
    r = shlex.quote(desired["resource"])
    device = shlex.quote(desired["device"])
    if not fact["loaded"]:
        return [{"run": "modprobe drbd"}]
    if not fact["up"]:
        steps = [] if fact["metadata"] else [{"run": f"drbdadm create-md {r}"}]
        return steps + [{"run": f"drbdadm up {r}"}]
    if fact["cstate"] == "StandAlone" and fact.get("splitBrain"):
        raise PlanError(f"DRBD resource {desired['resource']} is in split brain here (StandAlone, role "
                        f"{fact['role']}): both nodes wrote while apart, and `pulumi up` never chooses whose writes "
                        f"to discard. Resolve it by hand (README, \"Split brain\"), then run `pulumi up` again")
    if fact["cstate"] == "StandAlone":
        return [{"run": f"drbdadm connect {r}"}]
    if desired.get("initialPrimary"):
        never_synced = fact["disk"] == "Inconsistent" and fact["peerDisk"] == "Inconsistent"
        if never_synced and fact["cstate"] == "Connected" and (fact["role"], fact["peerRole"]) == ("Secondary", "Secondary"):
            return [{"run": f"drbdadm primary --force {r}"}]
        if fact["role"] == "Primary" and fact["filesystem"] == "" and desired.get("fsType") and not fact["mounted"]:
            return [{"run": f"mkfs -t {shlex.quote(desired['fsType'])} -q {device}"}]
        if promoted_here and fact["role"] == "Primary" and fact["filesystem"] not in (None, "") \
                and not fact["mounted"]:
            return [{"run": f"drbdadm secondary {r}"}]
    return []


def drift_drbd(fact: dict) -> Optional[str]:
    """Only what `up` repairs; roles and a peer that is away are Heartbeat's business (see the outputs)."""
    if not fact["loaded"]:
        return "the drbd kernel module is not loaded on the server"
    if not fact["up"]:
        return "the resource is down on the server"
    if fact["cstate"] == "StandAlone" and fact.get("splitBrain"):
        return (f"SPLIT BRAIN: DRBD dropped the connection, both nodes wrote while apart (role here "
                f"{fact['role']}); resolve it by hand (README, \"Split brain\")")
    if fact["cstate"] == "StandAlone":
        return "disconnected from the peer (StandAlone)"
    return None
