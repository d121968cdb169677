"""DRBD 8.4 configuration: /etc/drbd.d/<resource>.res (and a global_common.conf).

8.4 syntax, the one the in-kernel 8.4 module's `drbdadm-84` parses: the tutorial's `syncer { rate }` became
`disk { resync-rate }`, `outdate-peer` became `fence-peer`, `fencing` sits in `disk`, `protocol` in `net`.
ping-int and ping-timeout are always written, sized to Heartbeat's takeover (see spec.drbd_ping_int_s), so
what decides a failover shows in the file rather than in DRBD's built-in defaults.
"""
from typing import List

from components.render import MANAGED
from components.spec import ClusterSpec, drbd_ping_int_s

GLOBAL_COMMON_PATH = "/etc/drbd.d/global_common.conf"
NOTIFY_SPLIT_BRAIN = "/usr/lib/drbd/notify-split-brain.sh"   # drbd-utils; mails its argument (comma-separated)


def resource_path(spec: ClusterSpec) -> str:
    return f"/etc/drbd.d/{spec.drbd.resource}.res"


def resource_file(spec: ClusterSpec) -> str:
    d = spec.drbd
    if not d.enabled:
        raise ValueError("DRBD is disabled in this stack (drbd.enabled: false): there is no resource file")
    out: List[str] = [f"# {resource_path(spec)}, {MANAGED}", f"resource {d.resource} {{"]
    out += ["  net {", f"    protocol {d.protocol};", f"    after-sb-0pri {d.after_sb_0pri};",
            f"    after-sb-1pri {d.after_sb_1pri};", f"    after-sb-2pri {d.after_sb_2pri};",
            "    rr-conflict disconnect;", f"    ping-int {drbd_ping_int_s(d, spec.heartbeat)};",
            f"    ping-timeout {d.effective_ping_timeout_ms // 100};", "  }"]
    out += ["  disk {", "    on-io-error detach;", f"    resync-rate {d.sync_rate};"]
    if d.fencing:
        out.append(f"    fencing {d.fencing};")
    out.append("  }")
    handlers = dict(d.handlers)
    if spec.alerts.emails and "split-brain" not in handlers:
        # DRBD's own script mails the alert addresses when it finds a split brain it leaves unresolved
        handlers["split-brain"] = f"{NOTIFY_SPLIT_BRAIN} {','.join(spec.alerts.emails)}"
    if handlers:
        out.append("  handlers {")
        out += [f'    {name} "{command}";' for name, command in sorted(handlers.items())]
        out.append("  }")
    out += ["  startup {", "    degr-wfc-timeout 120;", "  }"]
    for node in spec.nodes:
        out += [f"  on {node.name} {{", f"    device {d.device};", f"    disk {d.disk};",
                f"    address {node.address}:{d.port};", f"    meta-disk {d.meta_disk};", "  }"]
    out.append("}")
    return "\n".join(out) + "\n"


def global_common() -> str:
    """No usage reporting to LINBIT (the tutorial had `usage-count yes`): servers should not phone home."""
    return f"# {GLOBAL_COMMON_PATH}, {MANAGED}\nglobal {{\n  usage-count no;\n}}\ncommon {{\n}}\n"
