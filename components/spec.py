"""The stack configuration as typed, validated, immutable data.

`parse_config` reads every key of the `ovh-ha-cluster` and `ovh` namespaces at once and either returns a
`ClusterSpec` or raises `SpecError` listing *every* problem, each naming the key path, the bad value (never
a secret's) and what is expected, so an operator fixes a stack file in one pass, before anything runs.
Nothing here talks to Pulumi, a server or the OVH API: the same code backs `pulumi up` and
`python -m components.check_config`.
"""
from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

PROJECT = "ovh-ha-cluster"
OVH = "ovh"

# Keys whose value must only ever be set with `pulumi config set --secret`.
SECRET_KEYS = frozenset({
    f"{PROJECT}:heartbeatAuthkey",
    f"{PROJECT}:ipsecKeys",
    f"{PROJECT}:sshPrivateKey",
    f"{PROJECT}:agentConsumerKey",
    f"{OVH}:applicationKey",
    f"{OVH}:applicationSecret",
    f"{OVH}:consumerKey",
})

TOP_LEVEL_KEYS = (
    f"{PROJECT}:nodes", f"{PROJECT}:failoverIp", f"{PROJECT}:drbd", f"{PROJECT}:heartbeat",
    f"{PROJECT}:heartbeatAuthkey", f"{PROJECT}:ipsec", f"{PROJECT}:ipsecKeys", f"{PROJECT}:firewall",
    f"{PROJECT}:alerts", f"{PROJECT}:ovhApi", f"{PROJECT}:sshPrivateKey", f"{PROJECT}:sshKeyFile",
    f"{PROJECT}:agentConsumerKey",
    f"{OVH}:endpoint", f"{OVH}:applicationKey", f"{OVH}:applicationSecret", f"{OVH}:consumerKey",
)

# python-ovh's endpoint names; any http(s) URL is accepted too (an API emulator).
OVH_ENDPOINTS = ("ovh-eu", "ovh-ca", "ovh-us", "kimsufi-eu", "kimsufi-ca", "soyoustart-eu", "soyoustart-ca")


class Concealed:
    """A secret that is set but cannot be read here (an encrypted `{secure: ...}` value in a stack file).

    Its presence counts; checks of its content are skipped."""

    def __repr__(self) -> str:
        return "[secret]"


CONCEALED = Concealed()


# --------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class SpecError(ValueError):
    """Every problem of a stack configuration, reported together."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems: Tuple[Problem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"the stack configuration has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


# --------------------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SshSpec:
    user: str = "root"
    port: int = 22
    host: Optional[str] = None      # where sshd answers when not on the node's address (a jump, a lab forward)
    host_key: Optional[str] = None  # "ssh-ed25519 AAAA..."; None: trust on first use, recorded in state


@dataclass(frozen=True)
class NodeSpec:
    name: str        # `uname -n`: Heartbeat's and DRBD's node name
    service: str     # OVH service name the failover IP is routed to
    address: str     # main public IPv4
    interface: str   # where the failover IP is brought up
    ssh: SshSpec = field(default_factory=SshSpec)


@dataclass(frozen=True)
class FailoverIpSpec:
    address: str        # canonical: "203.0.113.10" or a block "203.0.113.8/30"
    prefix_len: int     # 32 for a single address
    initial_node: str
    fail_back: bool = False

    @property
    def cidr(self) -> str:
        """Always with the prefix, e.g. "203.0.113.10/32": how the resource agent receives it."""
        return f"{self.network.network_address}/{self.prefix_len}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address.split('/')[0]}/{self.prefix_len}")

    @property
    def is_block(self) -> bool:
        return self.prefix_len < 32

    @property
    def addresses(self) -> Tuple[str, ...]:
        """Every address of the block: a routed failover block has no network or broadcast address."""
        return tuple(str(a) for a in self.network)


@dataclass(frozen=True)
class DrbdSpec:
    enabled: bool = True
    resource: str = "r0"
    disk: Optional[str] = None
    device: str = "/dev/drbd0"
    mount_point: str = "/data"
    fs_type: str = "ext4"
    port: int = 7788
    protocol: str = "C"
    sync_rate: str = "20M"
    after_sb_0pri: str = "disconnect"
    after_sb_1pri: str = "disconnect"
    after_sb_2pri: str = "disconnect"
    fencing: Optional[str] = None
    # DRBD 8.4 handler name (e.g. "fence-peer") -> command line
    handlers: Dict[str, str] = field(default_factory=dict)
    initial_primary: Optional[str] = None
    meta_disk: str = "internal"
    # as declared (None: not set); drbd_ping_int_s() and effective_ping_timeout_ms give what is rendered
    ping_int_s: Optional[int] = None
    ping_timeout_ms: Optional[int] = None

    @property
    def effective_ping_timeout_ms(self) -> int:
        return self.ping_timeout_ms if self.ping_timeout_ms is not None else DRBD_PING_TIMEOUT_MS

    @property
    def uses_dopd(self) -> bool:
        """fence-peer through Heartbeat's dopd (the tutorial's outdate-peer): ha.cf must run dopd."""
        return self.enabled and "drbd-peer-outdater" in self.handlers.get("fence-peer", "")


@dataclass(frozen=True)
class HeartbeatSpec:
    keepalive_ms: int = 2000
    deadtime_ms: int = 30000
    warntime_ms: int = 6000
    initdead_ms: int = 60000
    udp_port: int = 694
    auto_failback: bool = False
    log_facility: str = "local0"
    log_file: Optional[str] = None


@dataclass(frozen=True)
class IpsecSpec:
    enabled: bool = True
    backend: str = "xfrm"                   # or "setkey"
    aead: Optional[str] = "rfc4106(gcm(aes))"
    encryption: Optional[str] = None        # with authentication, instead of an AEAD
    authentication: Optional[str] = None
    legacy: bool = False
    spis: Dict[str, int] = field(default_factory=dict)  # node -> SPI of the SA carrying traffic towards it
    key_epoch: int = 1


@dataclass(frozen=True)
class FirewallSpec:
    enabled: bool = True
    extra_tcp_ports: Tuple[int, ...] = ()
    extra_udp_ports: Tuple[int, ...] = ()


@dataclass(frozen=True)
class SmsSpec:
    enabled: bool = False
    service: Optional[str] = None
    sender: Optional[str] = None
    recipients: Tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertsSpec:
    emails: Tuple[str, ...] = ()
    sms: SmsSpec = field(default_factory=SmsSpec)


@dataclass(frozen=True)
class OvhApiSpec:
    backend: str = "rest"                   # or "soapi"
    endpoint: Optional[str] = None          # python-ovh endpoint name, or a URL


@dataclass(frozen=True)
class ClusterSpec:
    nodes: Tuple[NodeSpec, NodeSpec]
    failover_ip: FailoverIpSpec
    drbd: DrbdSpec
    heartbeat: HeartbeatSpec
    ipsec: IpsecSpec
    firewall: FirewallSpec
    alerts: AlertsSpec
    ovh_api: OvhApiSpec
    ssh_key_file: Optional[str] = None
    secrets_set: FrozenSet[str] = frozenset()   # names of the secret keys that were given (never values)
    warnings: Tuple[str, ...] = ()

    @property
    def node_names(self) -> Tuple[str, str]:
        return (self.nodes[0].name, self.nodes[1].name)

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} (nodes: {', '.join(self.node_names)})")

    def peer(self, name: str) -> NodeSpec:
        """The other node of the pair."""
        self.node(name)
        return next(n for n in self.nodes if n.name != name)


# ------------------------------------------------------------------------------------ algorithms

# AEADs: kernel name -> (accepted key lengths in bytes, incl. salt; generated length; setkey name or None)
AEADS: Dict[str, Tuple[Tuple[int, ...], int, Optional[str]]] = {
    "rfc4106(gcm(aes))": ((20, 28, 36), 36, "aes-gcm-16"),
    "rfc7539esp(chacha20,poly1305)": ((36,), 36, None),
}
# ciphers: kernel name -> (key lengths, generated length, setkey name, legacy only)
CIPHERS: Dict[str, Tuple[Tuple[int, ...], int, str, bool]] = {
    "cbc(aes)": ((16, 24, 32), 32, "aes-cbc", False),
    "cbc(des3_ede)": ((24,), 24, "3des-cbc", True),
}
# MACs: kernel name -> (key length, ICV truncation bits, setkey name, legacy only)
MACS: Dict[str, Tuple[int, int, str, bool]] = {
    "hmac(sha256)": (32, 128, "hmac-sha256", False),
    "hmac(sha384)": (48, 192, "hmac-sha384", False),
    "hmac(sha512)": (64, 256, "hmac-sha512", False),
    "hmac(sha1)": (20, 96, "hmac-sha1", False),
    "hmac(md5)": (16, 96, "hmac-md5", True),
}
# setkey / racoon spellings people copy from the tutorial -> the kernel name used here
_ALGORITHM_ALIASES = {
    "aes-gcm-16": "rfc4106(gcm(aes))", "aes-gcm": "rfc4106(gcm(aes))", "gcm(aes)": "rfc4106(gcm(aes))",
    "chacha20-poly1305": "rfc7539esp(chacha20,poly1305)",
    "3des-cbc": "cbc(des3_ede)", "3des": "cbc(des3_ede)", "des3_ede": "cbc(des3_ede)",
    "aes-cbc": "cbc(aes)", "rijndael-cbc": "cbc(aes)", "aes": "cbc(aes)",
    "hmac-md5": "hmac(md5)", "md5": "hmac(md5)", "hmac-sha1": "hmac(sha1)", "sha1": "hmac(sha1)",
    "hmac-sha256": "hmac(sha256)", "sha256": "hmac(sha256)", "hmac-sha384": "hmac(sha384)",
    "hmac-sha512": "hmac(sha512)", "sha512": "hmac(sha512)",
}

# DRBD 8.4 vocabulary
_AFTER_SB = {
    "afterSb0pri": ("disconnect", "discard-younger-primary", "discard-older-primary", "discard-zero-changes",
                    "discard-least-changes"),  # plus discard-node-<name>
    "afterSb1pri": ("disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"),
    "afterSb2pri": ("disconnect", "violently-as0p", "call-pri-lost-after-sb"),
}
_FENCING = ("dont-care", "resource-only", "resource-and-stonith")
# config key -> DRBD 8.4 handler name
_HANDLERS = {
    "fencePeer": "fence-peer",
    "unfencePeer": "unfence-peer",
    "splitBrain": "split-brain",
    "priOnInconDegr": "pri-on-incon-degr",
    "priLostAfterSb": "pri-lost-after-sb",
    "priLost": "pri-lost",
    "localIoError": "local-io-error",
    "beforeResyncTarget": "before-resync-target",
    "afterResyncTarget": "after-resync-target",
    "initialSplitBrain": "initial-split-brain",
}
# names from DRBD 8.0/8.3 that 8.4 renamed
_OLD_HANDLERS = {"outdatePeer": "fencePeer", "outdate-peer": "fencePeer", "fence-peer": "fencePeer",
                 "split-brain": "splitBrain"}
# Heartbeat's DRBD outdate-peer daemon and its client, as Debian 12's heartbeat package installs them
DOPD = "/usr/libexec/heartbeat/dopd"
DOPD_OUTDATER = "/usr/libexec/heartbeat/drbd-peer-outdater"
# Peer-loss detection. DRBD gives up on a silent peer after ping-int (idle time before it pings) plus
# ping-timeout (the wait for the answer); until then `drbdadm primary` on the survivor is refused. Heartbeat's
# drbddisk script tries `drbdadm primary` 6 times, 1 s apart, then fails the takeover.
DRBD_PING_INT_S = 10            # DRBD's default ping-int
DRBD_PING_TIMEOUT_MS = 500      # DRBD's default ping-timeout (5 tenths of a second)
DRBDDISK_RETRY_MS = 5000        # drbddisk's last try comes 5 s after its first
DRBD_PING_MARGIN_MS = 1000      # slack for timers, delivery and the tries' own run time
_FS_TYPES = ("ext4", "ext3", "ext2", "xfs", "btrfs")
_SYSLOG_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
                      "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                      "local7", "none")
_SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_RESOURCE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SMS_SERVICE = re.compile(r"^sms-[a-z]{2}[0-9]+-[0-9]+$")
_SMS_SENDER = re.compile(r"^[A-Za-z0-9]{1,11}$")
_SYNC_RATE = re.compile(r"^[1-9][0-9]*[KMG]?$")
_DRBD_DEVICE = re.compile(r"^/dev/drbd[0-9]+$")
_PATH = re.compile(r"^/[^\s\x00\"';]*$")


# -------------------------------------------------------------------------------------- reading


def _show(value: Any) -> str:
    """A bad value as the operator wrote it, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _closest(word: str, candidates: Iterable[str]) -> Optional[str]:
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


_REQUIRED = object()


class _Reader:
    """Collects problems while reading raw values; each getter returns None when the value is unusable."""

    def __init__(self) -> None:
        self.problems: List[Problem] = []
        self.warnings: List[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{key}: {message}")

    def has_problem(self, prefix: str) -> bool:
        return any(p.key == prefix or p.key.startswith(prefix + ".") or p.key.startswith(prefix + "[")
                   for p in self.problems)

    # containers

    def mapping(self, key: str, raw: Any, known: Sequence[str], *, secret: bool = False,
                renamed: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            shown = "(value hidden)" if secret else _show(raw)
            self.problem(key, f"expected an object with keys {', '.join(known)}; got {shown}")
            return {}
        for name in raw:
            if name in known:
                continue
            hint = ""
            if renamed and name in renamed:
                hint = f"; did you mean {renamed[name]}? ({name} is the name older versions used)"
            else:
                guess = _closest(str(name), known)
                if guess:
                    hint = f"; did you mean {guess}?"
            self.problem(f"{key}.{name}", f"unknown key{hint} (known keys here: {', '.join(known)})")
        return {k: v for k, v in raw.items() if k in known}

    def sequence(self, key: str, raw: Any, what: str) -> List[Any]:
        if raw is None:
            return []
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            self.problem(key, f"expected a list of {what}; got {_show(raw)}")
            return []
        return list(raw)

    # scalars

    def string(self, key: str, raw: Any, *, default: Any = None, pattern: Optional[re.Pattern] = None,
               expected: str = "a string", choices: Optional[Sequence[str]] = None) -> Optional[str]:
        if raw is None:
            if default is _REQUIRED:
                self.problem(key, f"missing; expected {expected}")
            return None if default is _REQUIRED else default
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            self.problem(key, f"{_show(raw)} is not {expected}")
            return None
        value = str(raw)
        if choices is not None and value not in choices:
            guess = _closest(value, choices)
            hint = f"; did you mean {guess}?" if guess else ""
            self.problem(key, f"{_show(raw)} is not one of {', '.join(choices)}{hint}")
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(key, f"{_show(raw)} is not {expected}")
            return None
        return value

    def integer(self, key: str, raw: Any, *, default: Any, lo: int, hi: int, expected: str) -> Optional[int]:
        if raw is None:
            if default is _REQUIRED:
                self.problem(key, f"missing; expected {expected}")
                return None
            return default
        value: Optional[int] = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"[0-9]+", raw.strip()):
            value = int(raw.strip())
        if value is None or not lo <= value <= hi:
            self.problem(key, f"{_show(raw)} is not {expected}")
            return None
        return value

    def port(self, key: str, raw: Any, default: Any) -> Optional[int]:
        return self.integer(key, raw, default=default, lo=1, hi=65535, expected="a port number from 1 to 65535")

    def boolean(self, key: str, raw: Any, default: bool) -> Optional[bool]:
        if raw is None:
            return default
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problem(key, f"{_show(raw)} is not a boolean; expected true or false")
        return None

    def abs_path(self, key: str, raw: Any, *, default: Any = None, what: str = "path") -> Optional[str]:
        value = self.string(key, raw, default=default, expected=f"an absolute {what}")
        if value is None or raw is None:
            return value
        if not _PATH.match(value) or "/../" in value + "/" or value.endswith("/.."):
            self.problem(key, f"{_show(value)} is not an absolute {what}; expected something like /dev/sda3 "
                              f"or /data (starting with /, no spaces or quotes)")
            return None
        return value

    def ipv4(self, key: str, raw: Any, *, required: bool = True) -> Optional[ipaddress.IPv4Address]:
        text = self.string(key, raw, default=_REQUIRED if required else None, expected="an IPv4 address")
        if text is None:
            return None
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            self.problem(key, f"{_show(raw)} is not an IPv4 address such as 198.51.100.11")
            return None
        if address.version != 4:
            self.problem(key, f"{_show(raw)} is IPv6; expected an IPv4 address (Heartbeat's ucast only speaks IPv4)")
            return None
        return address


# ----------------------------------------------------------------------------------- durations


def parse_duration_ms(raw: Any) -> Optional[int]:
    """ha.cf's time values, as the operator may write them: whole seconds (int or digits) or "<N>ms"."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw * 1000 if raw > 0 else None
    if isinstance(raw, str):
        text = raw.strip()
        if re.fullmatch(r"[0-9]+", text):
            return int(text) * 1000 if int(text) > 0 else None
        match = re.fullmatch(r"([0-9]+)\s*ms", text, flags=re.IGNORECASE)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


def format_duration(ms: int) -> str:
    """Whole seconds when exact (ha.cf's usual form), else milliseconds."""
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


def _duration_hint(raw: Any) -> str:
    if isinstance(raw, float) and raw > 0:
        return f"; write {int(round(raw * 1000))}ms"
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|sec|secs|seconds?)\s*", raw, flags=re.IGNORECASE)
        if match:
            ms = int(round(float(match.group(1)) * 1000))
            return f"; ha.cf takes no \"s\" suffix: write {format_duration(ms)}"
        if re.fullmatch(r"\s*[0-9]*\.[0-9]+\s*", raw):
            return f"; write {int(round(float(raw) * 1000))}ms"
    return ""


def parse_drbd_ping_int_s(raw: Any) -> Optional[int]:
    """drbd.pingInt in whole seconds, as DRBD counts it: 5, "5", "5s" (or "5000ms"); None when not that."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        match = re.fullmatch(r"([0-9]+)\s*(s|ms)?", raw.strip(), flags=re.IGNORECASE)
        if match:
            value = int(match.group(1))
            if (match.group(2) or "").lower() != "ms":
                return value
            return value // 1000 if value % 1000 == 0 else None
    return None


def parse_drbd_ping_timeout_ms(raw: Any) -> Optional[int]:
    """drbd.pingTimeout with its unit: "500ms", "1s", "1.5s". A bare number is refused: DRBD's own
    ping-timeout counts tenths of a second, so `5` copied from a drbd.conf would silently mean ten times more."""
    if not isinstance(raw, str):
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s)", raw.strip(), flags=re.IGNORECASE)
    if not match:
        return None
    number, unit = match.group(1), match.group(2).lower()
    if unit == "ms":
        return int(number) if "." not in number else None
    ms = float(number) * 1000
    return int(round(ms)) if abs(ms - round(ms)) < 1e-6 else None


def format_ms(ms: int) -> str:
    """A pingTimeout as the stack file may write it: "1s", "500ms"."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _seconds(ms: int) -> str:
    """A time in messages: "10.5 s", "800 ms"."""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:g} s"


def drbd_detection_budget_ms(hb: HeartbeatSpec) -> int:
    """How long DRBD may take to give up on a silent peer (ping-int + ping-timeout) for a takeover to work.

    Heartbeat starts the takeover deadtime after the last heartbeat it heard, which may have left up to a
    keepalive before the peer died; drbddisk's last `drbdadm primary` comes 5 s later; 1 s stays free."""
    return hb.deadtime_ms - hb.keepalive_ms + DRBDDISK_RETRY_MS - DRBD_PING_MARGIN_MS


def drbd_ping_int_s(drbd: DrbdSpec, hb: HeartbeatSpec) -> int:
    """The ping-int to render: the declared one, else DRBD's 10 s when the takeover leaves room for it, else
    the largest whole second that fits (the spec's cross-check guarantees one does)."""
    if drbd.ping_int_s is not None:
        return drbd.ping_int_s
    room_s = (drbd_detection_budget_ms(hb) - drbd.effective_ping_timeout_ms) // 1000
    if room_s < 1:
        raise ValueError(f"no DRBD ping-int fits heartbeat deadtime {_seconds(hb.deadtime_ms)} with "
                         f"pingTimeout {_seconds(drbd.effective_ping_timeout_ms)}")
    return min(DRBD_PING_INT_S, room_s)


# ------------------------------------------------------------------------------------------ keys


def parse_spi(raw: Any) -> Optional[int]:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            return None
    return None


def decode_hex_key(text: str) -> Optional[bytes]:
    """A key written as hex, with or without 0x: the tutorial's and ip-xfrm's notation."""
    cleaned = text.strip()
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or len(cleaned) % 2:
        return None
    try:
        return binascii.unhexlify(cleaned)
    except (binascii.Error, ValueError):
        return None


def ipsec_key_lengths(ipsec: IpsecSpec) -> Tuple[int, ...]:
    """Accepted lengths, in bytes, of the one key per direction (cipher key then MAC key, or AEAD key+salt)."""
    if ipsec.aead:
        return AEADS[ipsec.aead][0]
    mac_len = MACS[ipsec.authentication][0]
    return tuple(n + mac_len for n in CIPHERS[ipsec.encryption][0])


def ipsec_generated_key_length(ipsec: IpsecSpec) -> int:
    if ipsec.aead:
        return AEADS[ipsec.aead][1]
    return CIPHERS[ipsec.encryption][1] + MACS[ipsec.authentication][0]


def _ssh_private_key_problem(text: str) -> Optional[str]:
    """Why a private key will not do, without ever quoting it."""
    body = text.strip()
    if not body.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in body.splitlines()[0]:
        return ("does not look like a private key (value hidden); expected a PEM or OpenSSH block starting "
                "with -----BEGIN ... PRIVATE KEY-----, e.g. `pulumi config set --secret sshPrivateKey "
                "< ~/.ssh/id_ed25519`")
    if "ENCRYPTED" in body.splitlines()[0] or "Proc-Type: 4,ENCRYPTED" in body:
        return ("is protected by a passphrase (value hidden); the program cannot prompt for it: give an "
                "unencrypted key (Pulumi keeps it encrypted in the stack)")
    if "OPENSSH PRIVATE KEY" in body.splitlines()[0]:
        lines = [line for line in body.splitlines()[1:] if line and not line.startswith("-----")]
        try:
            blob = base64.b64decode("".join(lines), validate=True)
        except (binascii.Error, ValueError):
            return "is not a readable OpenSSH private key (value hidden): its base64 body is damaged"
        magic = b"openssh-key-v1\x00"
        if not blob.startswith(magic) or len(blob) < len(magic) + 4:
            return "is not a readable OpenSSH private key (value hidden)"
        size = int.from_bytes(blob[len(magic):len(magic) + 4], "big")
        cipher = blob[len(magic) + 4:len(magic) + 4 + size]
        if cipher != b"none":
            return ("is protected by a passphrase (value hidden); the program cannot prompt for it: give an "
                    "unencrypted key (Pulumi keeps it encrypted in the stack)")
    return None


def _host_key_problem(text: str) -> Optional[str]:
    parts = text.split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        return (f"{_show(text)} is not a public host key; expected \"<type> <base64>\" with type one of "
                f"{', '.join(_SSH_KEY_TYPES[:5])}, as printed by `ssh-keyscan` or in "
                f"/etc/ssh/ssh_host_ed25519_key.pub")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return f"{_show(text)}: the key body is not base64"
    size = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if size < 0 or blob[4:4 + size].decode("ascii", "replace") != parts[0]:
        return f"{_show(text)}: the key body does not hold a {parts[0]} key"
    return None


# ---------------------------------------------------------------------------------- the parser

_NODE_KEYS = ("name", "service", "address", "interface", "ssh")
_SSH_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$")
_SSH_KEYS = ("user", "port", "host", "hostKey")
_FIP_KEYS = ("address", "initialNode", "failBack")
_DRBD_KEYS = ("enabled", "resource", "disk", "device", "mountPoint", "fsType", "port", "protocol", "syncRate",
              "afterSb0pri", "afterSb1pri", "afterSb2pri", "fencing", "handlers", "initialPrimary", "metaDisk",
              "pingInt", "pingTimeout")
_HB_KEYS = ("keepalive", "deadtime", "warntime", "initdead", "udpPort", "autoFailback", "logFacility", "logFile")
_IPSEC_KEYS = ("enabled", "backend", "aead", "legacy", "encryption", "authentication", "spis", "keyEpoch")
_FW_KEYS = ("enabled", "extraTcpPorts", "extraUdpPorts")
_ALERT_KEYS = ("emails", "sms")
_SMS_KEYS = ("enabled", "service", "sender", "recipients")
_API_KEYS = ("backend",)


def parse_config(values: Mapping[str, object], secret_keys: Iterable[str]) -> ClusterSpec:
    """The validated cluster, or SpecError with every problem found.

    `values` maps full keys ("ovh-ha-cluster:nodes") to decoded values; `secret_keys` names the keys that
    were set with --secret. A secret key's value may be `Concealed` (check_config cannot decrypt it).
    """
    secret_keys = set(secret_keys)
    r = _Reader()
    _check_top_level(r, values)
    _check_secrets_not_plain(r, values, secret_keys)

    def get(name: str, ns: str = PROJECT) -> Any:
        return values.get(f"{ns}:{name}")

    nodes = _parse_nodes(r, get("nodes"))
    names = [n.name for n in nodes if n is not None and n.name]
    fip = _parse_failover_ip(r, get("failoverIp"), nodes, names)
    drbd = _parse_drbd(r, get("drbd"), names, fip)
    heartbeat = _parse_heartbeat(r, get("heartbeat"))
    ipsec = _parse_ipsec(r, get("ipsec"), names)
    firewall = _parse_firewall(r, get("firewall"))
    alerts = _parse_alerts(r, get("alerts"))
    ovh_api = _parse_ovh_api(r, get("ovhApi"), values)
    ssh_key_file = _parse_ssh_credentials(r, values)
    _check_secret_values(r, values, secret_keys, ipsec, names)
    _check_cross(r, nodes, drbd, heartbeat, ipsec, firewall, alerts)

    if values.get(f"{PROJECT}:agentConsumerKey") in (None, ""):
        r.warn(f"{PROJECT}:agentConsumerKey", "not set: the failover-IP resource script on the servers gets no OVH "
                                             "credentials, so a Heartbeat takeover cannot move the IP; request a "
                                             "node key with `make ovh-credentials` and set it with "
                                             "`pulumi config set --secret agentConsumerKey`")
    if r.problems:
        raise SpecError(r.problems)
    given = frozenset(k for k in SECRET_KEYS if values.get(k) not in (None, "", {}))
    return ClusterSpec(nodes=tuple(nodes), failover_ip=fip, drbd=drbd, heartbeat=heartbeat, ipsec=ipsec,
                       firewall=firewall, alerts=alerts, ovh_api=ovh_api, ssh_key_file=ssh_key_file,
                       secrets_set=given, warnings=tuple(r.warnings))


def _check_top_level(r: _Reader, values: Mapping[str, object]) -> None:
    known_names = {k.split(":", 1)[1]: k for k in TOP_LEVEL_KEYS}
    for key in values:
        if ":" not in key:
            guess = known_names.get(key) or _closest(key, TOP_LEVEL_KEYS)
            hint = f"; did you mean {guess}?" if guess else ""
            r.problem(key, f"configuration keys need a namespace{hint}")
            continue
        namespace, name = key.split(":", 1)
        if namespace not in (PROJECT, OVH):
            if _closest(namespace, (PROJECT, OVH)) and namespace != "pulumi":
                guess = _closest(f"{_closest(namespace, (PROJECT, OVH))}:{name}", TOP_LEVEL_KEYS)
                hint = f"; did you mean {guess}?" if guess else ""
                r.problem(key, f"unknown namespace {namespace!r}{hint}")
            continue
        if key in TOP_LEVEL_KEYS:
            continue
        elsewhere = [k for k in TOP_LEVEL_KEYS if k.split(":", 1)[1] == name]
        guess = elsewhere[0] if elsewhere else _closest(key, TOP_LEVEL_KEYS)
        hint = f"; did you mean {guess}?" if guess else ""
        r.problem(key, f"unknown key{hint}")


def _check_secrets_not_plain(r: _Reader, values: Mapping[str, object], secret_keys: set) -> None:
    for key in sorted(SECRET_KEYS):
        value = values.get(key)
        if value in (None, "", {}):
            continue
        if key not in secret_keys:
            short = key.split(":", 1)[1] if key.startswith(PROJECT + ":") else key
            r.problem(key, f"is a secret but was given in plain config (value hidden); remove it from the "
                           f"stack file and set it with `pulumi config set --secret {short}`")


def _parse_nodes(r: _Reader, raw: Any) -> List[Optional[NodeSpec]]:
    key = f"{PROJECT}:nodes"
    if raw is None:
        r.problem(key, "missing; expected a list of exactly two servers, each with name, service, address, "
                       "interface")
        return []
    items = r.sequence(key, raw, "two servers")
    if not items and r.has_problem(key):
        return []
    if len(items) != 2:
        r.problem(key, f"{len(items)} node(s) given; expected exactly two (a Heartbeat pair)")
    nodes: List[Optional[NodeSpec]] = []
    for index, item in enumerate(items[:2] if len(items) >= 2 else items):
        path = f"{key}[{index}]"
        obj = r.mapping(path, item, _NODE_KEYS)
        if not isinstance(item, Mapping):
            nodes.append(None)
            continue
        name = r.string(f"{path}.name", obj.get("name"), default=_REQUIRED, pattern=_HOSTNAME,
                        expected="a host name as printed by `uname -n` (letters, digits, - and .)")
        service = r.string(f"{path}.service", obj.get("service"), default=_REQUIRED, pattern=_HOSTNAME,
                           expected="the server's OVH service name, e.g. ns11111.ovh.net")
        address = r.ipv4(f"{path}.address", obj.get("address"))
        if address is not None and (address.is_loopback or address.is_unspecified or address.is_multicast
                                    or address.is_link_local):
            r.problem(f"{path}.address", f"{_show(str(address))} cannot be a server's main address; expected "
                                         f"the public IPv4 of the server")
            address = None
        interface = r.string(f"{path}.interface", obj.get("interface"), default=_REQUIRED, pattern=_IFNAME,
                             expected="a network interface name such as eth0 or eno1 (at most 15 characters)")
        ssh_raw = obj.get("ssh")
        ssh_obj = r.mapping(f"{path}.ssh", ssh_raw, _SSH_KEYS)
        user = r.string(f"{path}.ssh.user", ssh_obj.get("user"), default="root", pattern=_USER,
                        expected="a user name such as root")
        port = r.port(f"{path}.ssh.port", ssh_obj.get("port"), 22)
        ssh_host = r.string(f"{path}.ssh.host", ssh_obj.get("host"), pattern=_SSH_HOST,
                            expected="a host name or IP address where this server's sshd answers")
        host_key = r.string(f"{path}.ssh.hostKey", ssh_obj.get("hostKey"), expected="a public host key")
        if host_key is not None:
            reason = _host_key_problem(host_key)
            if reason:
                r.problem(f"{path}.ssh.hostKey", reason)
        nodes.append(NodeSpec(name=name, service=service, address=str(address) if address else None,
                              interface=interface, ssh=SshSpec(user=user, port=port, host=ssh_host, host_key=host_key)))
    valid = [n for n in nodes if n is not None]
    if len(valid) == 2:
        a, b = valid
        for attr, what in (("name", "names"), ("service", "OVH service names"), ("address", "addresses")):
            x, y = getattr(a, attr), getattr(b, attr)
            if x is not None and y is not None and x.lower() == y.lower():
                r.problem(f"{key}[1].{attr}", f"{_show(y)} is also node 0's; the two nodes need different {what}")
    return nodes


def _parse_failover_ip(r: _Reader, raw: Any, nodes: List[Optional[NodeSpec]], names: List[str]) -> Optional[FailoverIpSpec]:
    key = f"{PROJECT}:failoverIp"
    if raw is None:
        r.problem(key, "missing; expected an object with address (the failover IP bought from OVH) and initialNode")
        return None
    obj = r.mapping(key, raw, _FIP_KEYS)
    if not isinstance(raw, Mapping):
        return None
    text = r.string(f"{key}.address", obj.get("address"), default=_REQUIRED,
                    expected="an IPv4 address such as 203.0.113.10, or a block such as 203.0.113.8/30")
    network = None
    if text is not None:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text.strip(), strict=False)
                r.problem(f"{key}.address", f"{_show(text)} has host bits set; a failover block starts at its "
                                            f"network address: did you mean {loose}?")
            except ValueError:
                r.problem(f"{key}.address", f"{_show(text)} is not an IPv4 address or block; expected "
                                            f"203.0.113.10 or 203.0.113.8/30")
        if network is not None and network.version != 4:
            r.problem(f"{key}.address", f"{_show(text)} is IPv6; expected an IPv4 failover IP or block")
            network = None
    initial = r.string(f"{key}.initialNode", obj.get("initialNode"), default=names[0] if names else None,
                       expected="the name of one of the two nodes")
    if initial is not None and names and initial not in names:
        guess = _closest(initial, names)
        hint = f"; did you mean {guess}?" if guess else ""
        r.problem(f"{key}.initialNode", f"{_show(initial)} is not a node; expected one of {', '.join(names)}{hint}")
        initial = None
    fail_back = r.boolean(f"{key}.failBack", obj.get("failBack"), False)
    if network is not None:
        for index, node in enumerate(nodes):
            if node is None or node.address is None:
                continue
            if ipaddress.ip_address(node.address) in network:
                what = "is" if network.prefixlen == 32 else "lies inside"
                r.problem(f"{key}.address", f"{_show(text)}: node {node.name or index}'s own address {node.address} "
                                            f"{what} the failover IP; the failover IP must be an extra address "
                                            f"that OVH routes to the active server")
        if r.has_problem(f"{key}.address"):
            return None
        bare = str(network.network_address) if network.prefixlen == 32 else str(network)
        return FailoverIpSpec(address=bare, prefix_len=network.prefixlen, initial_node=initial,
                              fail_back=bool(fail_back))
    return None


def _parse_drbd(r: _Reader, raw: Any, names: List[str], fip: Optional[FailoverIpSpec]) -> Optional[DrbdSpec]:
    key = f"{PROJECT}:drbd"
    obj = r.mapping(key, raw, _DRBD_KEYS)
    enabled = r.boolean(f"{key}.enabled", obj.get("enabled"), True)
    d = DrbdSpec()
    resource = r.string(f"{key}.resource", obj.get("resource"), default=d.resource, pattern=_RESOURCE,
                        expected="a DRBD resource name (letters, digits, _ . -), e.g. r0")
    disk_raw = obj.get("disk")
    if enabled and disk_raw is None:
        r.problem(f"{key}.disk", "missing; expected the absolute path of the backing partition (e.g. /dev/sda3), "
                                 "or drbd.enabled: false")
        disk = None
    else:
        disk = r.abs_path(f"{key}.disk", disk_raw, what="block device path")
    device = r.abs_path(f"{key}.device", obj.get("device"), default=d.device, what="device path")
    if device is not None and not _DRBD_DEVICE.match(device):
        r.problem(f"{key}.device", f"{_show(device)} is not a DRBD device; expected /dev/drbd<minor>, e.g. /dev/drbd0")
        device = None
    if disk is not None and device is not None and disk == device:
        r.problem(f"{key}.disk", f"{_show(disk)} is the DRBD device itself; expected the backing partition")
    mount_point = r.abs_path(f"{key}.mountPoint", obj.get("mountPoint"), default=d.mount_point, what="directory")
    if mount_point is not None and mount_point.rstrip("/") in ("", "/boot", "/etc", "/usr", "/var", "/proc",
                                                               "/sys", "/dev", "/run", "/tmp"):
        r.problem(f"{key}.mountPoint", f"{_show(mount_point)} is a system directory; expected a dedicated "
                                       f"directory such as /data")
    fs_type = r.string(f"{key}.fsType", obj.get("fsType"), default=d.fs_type, choices=_FS_TYPES)
    port = r.port(f"{key}.port", obj.get("port"), d.port)
    protocol = r.string(f"{key}.protocol", obj.get("protocol"), default=d.protocol, choices=("A", "B", "C"))
    if enabled and protocol in ("A", "B"):
        r.warn(f"{key}.protocol", f"protocol {protocol} acknowledges a write before the peer's disk has it: a "
                                  f"failover can lose the last writes (protocol C does not)")
    sync_rate = r.string(f"{key}.syncRate", obj.get("syncRate"), default=d.sync_rate, pattern=_SYNC_RATE,
                         expected="a rate such as 20M (bytes per second, suffix K, M or G)")
    policies = {}
    for name in ("afterSb0pri", "afterSb1pri", "afterSb2pri"):
        value = r.string(f"{key}.{name}", obj.get(name), default="disconnect", expected="a split-brain policy")
        allowed = _AFTER_SB[name]
        discards_a_node = (name == "afterSb0pri" and value is not None
                           and value.startswith("discard-node-") and value[len("discard-node-"):] in names)
        if value is not None and value not in allowed and not discards_a_node:
            extra = f", discard-node-<{'|'.join(names)}>" if name == "afterSb0pri" and names else ""
            guess = _closest(value, allowed)
            hint = f"; did you mean {guess}?" if guess else ""
            r.problem(f"{key}.{name}", f"{_show(value)} is not a DRBD 8.4 policy; expected one of "
                                       f"{', '.join(allowed)}{extra}{hint}")
            value = None
        policies[name] = value
    fencing = r.string(f"{key}.fencing", obj.get("fencing"), default=None, choices=_FENCING)
    handlers_obj = r.mapping(f"{key}.handlers", obj.get("handlers"), tuple(_HANDLERS), renamed=_OLD_HANDLERS)
    handlers: Dict[str, str] = {}
    for name, value in handlers_obj.items():
        command = r.string(f"{key}.handlers.{name}", value, expected="a command line")
        if command is None:
            continue
        if '"' in command or "\n" in command or not command.strip():
            r.problem(f"{key}.handlers.{name}", f"{_show(command)} cannot be written in a DRBD config; expected "
                                                f"a one-line command without double quotes")
            continue
        handlers[_HANDLERS[name]] = command
    if fencing in ("resource-only", "resource-and-stonith") and "fence-peer" not in handlers:
        r.problem(f"{key}.fencing", f"{_show(fencing)} needs handlers.fencePeer, the program that outdates or "
                                    f"fences the peer; add it or set fencing: dont-care")
    fence = handlers.get("fence-peer", "")
    if enabled and fence.split()[:1] == ["/usr/lib/heartbeat/drbd-peer-outdater"]:
        r.warn(f"{key}.handlers.fencePeer", f"{DOPD_OUTDATER} is where Debian 12's heartbeat installs "
                                           f"drbd-peer-outdater; /usr/lib/heartbeat/ (the tutorial's path) has none")
    initial_default = fip.initial_node if fip and fip.initial_node else (names[0] if names else None)
    initial = r.string(f"{key}.initialPrimary", obj.get("initialPrimary"), default=initial_default,
                       expected="the name of one of the two nodes")
    if initial is not None and names and initial not in names:
        guess = _closest(initial, names)
        hint = f"; did you mean {guess}?" if guess else ""
        r.problem(f"{key}.initialPrimary", f"{_show(initial)} is not a node; expected one of "
                                           f"{', '.join(names)}{hint}")
    meta_raw = obj.get("metaDisk")
    meta_disk = "internal"
    if meta_raw is not None and meta_raw != "internal":
        meta_disk = r.abs_path(f"{key}.metaDisk", meta_raw, what="block device path (or internal)")
        if meta_disk is not None and disk is not None and meta_disk == disk:
            r.problem(f"{key}.metaDisk", f"{_show(meta_disk)} is the data disk; write internal to keep the "
                                         f"metadata on it")
    ping_int = ping_timeout = None
    if obj.get("pingInt") is not None:
        ping_int = parse_drbd_ping_int_s(obj["pingInt"])
        if ping_int is None or not 1 <= ping_int <= 120:
            r.problem(f"{key}.pingInt", f"{_show(obj['pingInt'])} is not a DRBD ping interval; expected whole "
                                        f"seconds from 1 to 120, e.g. 5 or \"5s\"")
            ping_int = None
    if obj.get("pingTimeout") is not None:
        raw_timeout = obj["pingTimeout"]
        ping_timeout = parse_drbd_ping_timeout_ms(raw_timeout)
        if ping_timeout is None:
            bare = not isinstance(raw_timeout, bool) and (isinstance(raw_timeout, (int, float)) or (
                isinstance(raw_timeout, str) and re.fullmatch(r"\s*[0-9.]+\s*", raw_timeout)))
            why = (" (a bare number is ambiguous: DRBD's own ping-timeout counts tenths of a second)"
                   if bare else "")
            r.problem(f"{key}.pingTimeout", f"{_show(raw_timeout)} is not a duration with its unit{why}; expected "
                                            f"e.g. \"500ms\" or \"1s\"")
        elif ping_timeout % 100 or not 100 <= ping_timeout <= 30000:
            r.problem(f"{key}.pingTimeout", f"{_show(raw_timeout)} cannot be a DRBD ping timeout; expected a "
                                            f"multiple of 100ms from 100ms to 30s (DRBD counts tenths of a "
                                            f"second), e.g. \"500ms\"")
            ping_timeout = None
    return DrbdSpec(enabled=bool(enabled), resource=resource, disk=disk, device=device, mount_point=mount_point,
                    fs_type=fs_type, port=port, protocol=protocol, sync_rate=sync_rate,
                    after_sb_0pri=policies["afterSb0pri"], after_sb_1pri=policies["afterSb1pri"],
                    after_sb_2pri=policies["afterSb2pri"], fencing=fencing, handlers=handlers,
                    initial_primary=initial, meta_disk=meta_disk, ping_int_s=ping_int, ping_timeout_ms=ping_timeout)


def _parse_heartbeat(r: _Reader, raw: Any) -> HeartbeatSpec:
    key = f"{PROJECT}:heartbeat"
    obj = r.mapping(key, raw, _HB_KEYS)
    d = HeartbeatSpec()
    timings: Dict[str, Optional[int]] = {}
    for name, default in (("keepalive", d.keepalive_ms), ("deadtime", d.deadtime_ms),
                          ("warntime", d.warntime_ms), ("initdead", d.initdead_ms)):
        value = obj.get(name)
        if value is None:
            timings[name] = default
            continue
        ms = parse_duration_ms(value)
        if ms is None:
            r.problem(f"{key}.{name}", f"{_show(value)} is not a time ha.cf accepts; expected whole seconds "
                                       f"(2) or milliseconds (\"500ms\"){_duration_hint(value)}")
        timings[name] = ms
    ka, dead, warn, init = (timings[n] for n in ("keepalive", "deadtime", "warntime", "initdead"))
    f = format_duration
    if ka is not None and dead is not None and not dead > 2 * ka:
        r.problem(f"{key}.deadtime", f"{f(dead)} must be greater than twice keepalive (2 x {f(ka)}): a node would "
                                     f"be declared dead after a single late heartbeat")
    if warn is not None and dead is not None and not warn < dead:
        r.problem(f"{key}.warntime", f"{f(warn)} must be less than deadtime ({f(dead)}): the warning about late "
                                     f"heartbeats has to come before the node is declared dead")
    if init is not None and dead is not None and not init >= 2 * dead:
        r.problem(f"{key}.initdead", f"{f(init)} must be at least twice deadtime (2 x {f(dead)}): after a boot "
                                     f"the network needs time to come up before the peer is declared dead")
    udp_port = r.port(f"{key}.udpPort", obj.get("udpPort"), d.udp_port)
    auto_failback = r.boolean(f"{key}.autoFailback", obj.get("autoFailback"), d.auto_failback)
    facility = r.string(f"{key}.logFacility", obj.get("logFacility"), default=d.log_facility,
                        choices=_SYSLOG_FACILITIES)
    log_file = r.abs_path(f"{key}.logFile", obj.get("logFile"), what="file path")
    return HeartbeatSpec(keepalive_ms=ka, deadtime_ms=dead, warntime_ms=warn, initdead_ms=init, udp_port=udp_port,
                         auto_failback=auto_failback, log_facility=facility, log_file=log_file)


def _algorithm(r: _Reader, key: str, raw: Any, table: Mapping[str, Any], what: str) -> Optional[str]:
    value = r.string(key, raw, expected=f"a kernel {what} name")
    if value is None:
        return None
    if value in table:
        return value
    alias = _ALGORITHM_ALIASES.get(value.lower())
    if alias in table:
        r.problem(key, f"{_show(value)} is the setkey spelling; write the kernel name {alias}")
    else:
        r.problem(key, f"{_show(value)} is not a supported {what}; expected one of {', '.join(table)}")
    return None


def _is_legacy(algorithm: str) -> bool:
    return CIPHERS[algorithm][3] if algorithm in CIPHERS else MACS[algorithm][3]


def _parse_ipsec(r: _Reader, raw: Any, names: List[str]) -> Optional[IpsecSpec]:
    key = f"{PROJECT}:ipsec"
    obj = r.mapping(key, raw, _IPSEC_KEYS)
    enabled = r.boolean(f"{key}.enabled", obj.get("enabled"), True)
    backend = r.string(f"{key}.backend", obj.get("backend"), default="xfrm", choices=("xfrm", "setkey"))
    legacy = r.boolean(f"{key}.legacy", obj.get("legacy"), False)
    enc_raw, auth_raw, aead_raw = obj.get("encryption"), obj.get("authentication"), obj.get("aead")
    aead: Optional[str] = None
    encryption = authentication = None
    if enc_raw is not None or auth_raw is not None:
        if aead_raw is not None:
            r.problem(f"{key}.aead", "give either aead, or encryption + authentication, not both")
        encryption = _algorithm(r, f"{key}.encryption", enc_raw, CIPHERS, "cipher") if enc_raw is not None else None
        authentication = (_algorithm(r, f"{key}.authentication", auth_raw, MACS, "authentication algorithm")
                          if auth_raw is not None else None)
        if enc_raw is None:
            r.problem(f"{key}.encryption", f"missing; authentication needs a cipher too, e.g. cbc(aes) (or use "
                                           f"aead: rfc4106(gcm(aes)) alone)")
        if auth_raw is None:
            r.problem(f"{key}.authentication", f"missing; ESP with a cipher needs an authentication algorithm "
                                               f"too, e.g. hmac(sha256)")
        weak = [a for a in (encryption, authentication) if a is not None and _is_legacy(a)]
        if weak and not legacy:
            r.problem(f"{key}.{'encryption' if encryption in weak else 'authentication'}",
                      f"{' + '.join(weak)} is the tutorial's 2008 cryptography (3DES has 64-bit blocks, MD5 is "
                      f"broken) and is refused; use aead: rfc4106(gcm(aes)), or set ipsec.legacy: true only to "
                      f"take over a hand-built cluster before migrating")
        elif weak and enabled:
            r.warn(f"{key}.legacy", f"IPsec uses {' + '.join(weak)}, the tutorial's weak algorithms; migrate to "
                                    f"aead: rfc4106(gcm(aes)) and drop legacy: true")
        elif legacy and encryption and authentication and enabled:
            r.warn(f"{key}.legacy", "legacy: true has no effect: the algorithms chosen are not legacy ones")
    else:
        aead = _algorithm(r, f"{key}.aead", aead_raw if aead_raw is not None else "rfc4106(gcm(aes))",
                          AEADS, "AEAD")
        if legacy and enabled:
            r.warn(f"{key}.legacy", "legacy: true has no effect with an AEAD")
    if backend == "setkey":
        if aead is not None and AEADS[aead][2] is None:
            r.problem(f"{key}.aead", f"{_show(aead)} cannot be expressed with setkey (ipsec-tools); use "
                                     f"rfc4106(gcm(aes)) or backend: xfrm")
    spis_raw = obj.get("spis")
    spis: Dict[str, int] = {}
    if spis_raw is None:
        spis = {name: 0x1001 + i for i, name in enumerate(names)}
    else:
        spis_obj = r.mapping(f"{key}.spis", spis_raw, names or ["<node name>"])
        for name in names:
            if name not in spis_obj:
                r.problem(f"{key}.spis.{name}", "missing; every node needs the SPI of the SA towards it, "
                                                "e.g. \"0x1001\"")
                continue
            spi = parse_spi(spis_obj[name])
            if spi is None or not 0x100 <= spi <= 0xFFFFFFFF:
                r.problem(f"{key}.spis.{name}", f"{_show(spis_obj[name])} is not a usable SPI; expected a number "
                                                f"from 0x100 to 0xffffffff (1-255 are reserved), e.g. \"0x1001\"")
                continue
            spis[name] = spi
        seen: Dict[int, str] = {}
        for name, spi in spis.items():
            if spi in seen:
                r.problem(f"{key}.spis.{name}", f"{hex(spi)} is also {seen[spi]}'s SPI; each direction needs "
                                                f"its own SPI")
            seen[spi] = name
    epoch = r.integer(f"{key}.keyEpoch", obj.get("keyEpoch"), default=1, lo=1, hi=2**31 - 1,
                      expected="a whole number >= 1 (bump it to rotate the generated keys)")
    return IpsecSpec(enabled=bool(enabled), backend=backend, aead=aead, encryption=encryption,
                     authentication=authentication, legacy=bool(legacy), spis=spis, key_epoch=epoch)


def _parse_ports(r: _Reader, key: str, raw: Any) -> Tuple[int, ...]:
    ports = []
    for index, item in enumerate(r.sequence(key, raw, "port numbers")):
        port = r.port(f"{key}[{index}]", item, _REQUIRED)
        if port is not None and port not in ports:
            ports.append(port)
    return tuple(ports)


def _parse_firewall(r: _Reader, raw: Any) -> FirewallSpec:
    key = f"{PROJECT}:firewall"
    obj = r.mapping(key, raw, _FW_KEYS)
    enabled = r.boolean(f"{key}.enabled", obj.get("enabled"), True)
    return FirewallSpec(enabled=bool(enabled), extra_tcp_ports=_parse_ports(r, f"{key}.extraTcpPorts",
                                                                            obj.get("extraTcpPorts")),
                        extra_udp_ports=_parse_ports(r, f"{key}.extraUdpPorts", obj.get("extraUdpPorts")))


def _parse_alerts(r: _Reader, raw: Any) -> AlertsSpec:
    key = f"{PROJECT}:alerts"
    obj = r.mapping(key, raw, _ALERT_KEYS)
    emails = []
    for index, item in enumerate(r.sequence(f"{key}.emails", obj.get("emails"), "e-mail addresses")):
        email = r.string(f"{key}.emails[{index}]", item, default=_REQUIRED, pattern=_EMAIL,
                         expected="an e-mail address such as admin@example.org")
        if email is not None:
            emails.append(email)
    sms_obj = r.mapping(f"{key}.sms", obj.get("sms"), _SMS_KEYS)
    sms_enabled = r.boolean(f"{key}.sms.enabled", sms_obj.get("enabled"), bool(sms_obj))
    service = r.string(f"{key}.sms.service", sms_obj.get("service"), pattern=_SMS_SERVICE,
                       expected="an OVH SMS service name such as sms-ab12345-1")
    sender = r.string(f"{key}.sms.sender", sms_obj.get("sender"), expected="a sender")
    if sender is not None and not (_SMS_SENDER.match(sender) or _E164.match(sender)):
        r.problem(f"{key}.sms.sender", f"{_show(sender)} is not an SMS sender; expected up to 11 letters or "
                                       f"digits (e.g. OVHHA) or a number in E.164 form (+33...)")
        sender = None
    recipients = []
    for index, item in enumerate(r.sequence(f"{key}.sms.recipients", sms_obj.get("recipients"), "phone numbers")):
        number = r.string(f"{key}.sms.recipients[{index}]", item, default=_REQUIRED, pattern=_E164,
                          expected="a phone number in E.164 form, e.g. +33600000000 (+, country code, number, "
                                   "no spaces)")
        if number is not None:
            recipients.append(number)
    if sms_enabled:
        if sms_obj.get("service") is None:
            r.problem(f"{key}.sms.service", "missing; SMS alerts need the OVH SMS service name, e.g. sms-ab12345-1")
        if not sms_obj.get("recipients"):
            r.problem(f"{key}.sms.recipients", "missing; SMS alerts need at least one phone number (E.164, "
                                               "e.g. +33600000000)")
    if not emails and not sms_enabled:
        r.warn(key, "no e-mail and no SMS recipient: nobody hears about a failover")
    return AlertsSpec(emails=tuple(emails), sms=SmsSpec(enabled=bool(sms_enabled), service=service, sender=sender,
                                                       recipients=tuple(recipients)))


def _parse_ovh_api(r: _Reader, raw: Any, values: Mapping[str, object]) -> OvhApiSpec:
    key = f"{PROJECT}:ovhApi"
    obj = r.mapping(key, raw, _API_KEYS)
    backend = r.string(f"{key}.backend", obj.get("backend"), default="rest", choices=("rest", "soapi"))
    endpoint = r.string(f"{OVH}:endpoint", values.get(f"{OVH}:endpoint"), default=_REQUIRED,
                        expected=f"an OVH API endpoint: {', '.join(OVH_ENDPOINTS)}, or an http(s) URL")
    if endpoint is not None and endpoint not in OVH_ENDPOINTS and not re.match(r"^https?://[^\s/]+", endpoint):
        guess = _closest(endpoint, OVH_ENDPOINTS)
        hint = f"; did you mean {guess}?" if guess else ""
        r.problem(f"{OVH}:endpoint", f"{_show(endpoint)} is not an OVH API endpoint; expected one of "
                                     f"{', '.join(OVH_ENDPOINTS)}, or an http(s) URL{hint}")
        endpoint = None
    if backend == "rest":
        for name in ("applicationKey", "applicationSecret", "consumerKey"):
            if values.get(f"{OVH}:{name}") in (None, ""):
                r.problem(f"{OVH}:{name}", f"missing; the REST API needs it: `pulumi config set --secret "
                                           f"{OVH}:{name}`")
    if backend == "soapi":
        r.warn(f"{key}.backend", "soapi is OVH's legacy SOAP API (the tutorial's); prefer rest")
    return OvhApiSpec(backend=backend, endpoint=endpoint)


def _parse_ssh_credentials(r: _Reader, values: Mapping[str, object]) -> Optional[str]:
    private = values.get(f"{PROJECT}:sshPrivateKey")
    key_file = r.string(f"{PROJECT}:sshKeyFile", values.get(f"{PROJECT}:sshKeyFile"),
                        expected="the path of a private key file")
    if key_file is not None and (not key_file.strip() or "\n" in key_file or "PRIVATE KEY" in key_file):
        r.problem(f"{PROJECT}:sshKeyFile", "expected the path of a private key file (not the key itself; give "
                                           "the key with `pulumi config set --secret sshPrivateKey`)")
        key_file = None
    if private in (None, "") and key_file is None and not r.has_problem(f"{PROJECT}:sshKeyFile"):
        r.problem(f"{PROJECT}:sshPrivateKey", "missing; the program needs a key to reach the servers: "
                                              "`pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519`, "
                                              "or sshKeyFile: <path>")
    if private not in (None, "") and key_file is not None:
        r.problem(f"{PROJECT}:sshKeyFile", "give either sshPrivateKey or sshKeyFile, not both")
    return key_file


def _check_secret_values(r: _Reader, values: Mapping[str, object], secret_keys: set,
                         ipsec: Optional[IpsecSpec], names: List[str]) -> None:
    """Content checks of secrets. Messages describe, never quote, the value."""
    private = values.get(f"{PROJECT}:sshPrivateKey")
    if isinstance(private, str) and private:
        reason = _ssh_private_key_problem(private)
        if reason:
            r.problem(f"{PROJECT}:sshPrivateKey", reason)
    elif private not in (None, "") and not isinstance(private, Concealed):
        r.problem(f"{PROJECT}:sshPrivateKey", "expected the private key as text (value hidden)")

    authkey = values.get(f"{PROJECT}:heartbeatAuthkey")
    if isinstance(authkey, str) and authkey:
        if any(c.isspace() for c in authkey) or not authkey.isprintable():
            r.problem(f"{PROJECT}:heartbeatAuthkey", "contains spaces or control characters (value hidden); "
                                                     "expected one word of printable characters, e.g. 64 hex digits")
        elif len(authkey) < 16:
            r.problem(f"{PROJECT}:heartbeatAuthkey", f"is {len(authkey)} characters long (value hidden); expected "
                                                     f"at least 16, e.g. `openssl rand -hex 32`")
    elif authkey not in (None, "") and not isinstance(authkey, Concealed):
        r.problem(f"{PROJECT}:heartbeatAuthkey", "expected a string (value hidden)")

    for key in (f"{OVH}:applicationKey", f"{OVH}:applicationSecret", f"{OVH}:consumerKey",
                f"{PROJECT}:agentConsumerKey"):
        value = values.get(key)
        if value not in (None, "") and not isinstance(value, (str, Concealed)):
            r.problem(key, "expected a string (value hidden)")
        elif isinstance(value, str) and (not value.strip() or any(c.isspace() for c in value.strip())):
            r.problem(key, "contains spaces or line breaks (value hidden); expected the credential "
                           "as OVH printed it")

    keys_key = f"{PROJECT}:ipsecKeys"
    raw = values.get(keys_key)
    if raw in (None, "", {}) or isinstance(raw, Concealed):
        return
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            r.problem(keys_key, "expected an object {<node>: <hex key>} (value hidden)")
            return
    obj = r.mapping(keys_key, raw, names or ["<node name>"], secret=True)
    if ipsec is None or (ipsec.aead is None and (ipsec.encryption is None or ipsec.authentication is None)):
        return
    lengths = ipsec_key_lengths(ipsec)
    algorithm = ipsec.aead or f"{ipsec.encryption} + {ipsec.authentication}"
    for name, value in obj.items():
        if isinstance(value, Concealed):
            continue
        path = f"{keys_key}.{name}"
        key = decode_hex_key(value) if isinstance(value, str) else None
        if key is None:
            r.problem(path, "is not a hex string (value hidden); expected hex digits such as the output of "
                            f"`openssl rand -hex {ipsec_generated_key_length(ipsec)}`")
            continue
        if len(key) not in lengths:
            wanted = " or ".join(f"{n} bytes ({2 * n} hex digits)" for n in lengths)
            r.problem(path, f"is {len(key)} bytes long (value hidden); {algorithm} needs {wanted}"
                            + (" (AES key + 4-byte salt)" if ipsec.aead == "rfc4106(gcm(aes))" else "")
                            + (" (cipher key followed by MAC key)" if ipsec.aead is None else ""))


def _check_cross(r: _Reader, nodes: List[Optional[NodeSpec]], drbd: Optional[DrbdSpec], hb: HeartbeatSpec,
                 ipsec: Optional[IpsecSpec], fw: FirewallSpec, alerts: AlertsSpec) -> None:
    """Rules that tie sections together: ports that must stay private, features that depend on each other."""
    drbd_on = drbd is not None and drbd.enabled
    if drbd_on and drbd.port is not None:
        for index, node in enumerate(nodes):
            if node is not None and node.ssh.port == drbd.port:
                r.problem(f"{PROJECT}:drbd.port", f"{drbd.port} is also node {index}'s SSH port; expected another "
                                                  f"port (7788 by default)")
        if drbd.port in fw.extra_tcp_ports:
            r.problem(f"{PROJECT}:firewall.extraTcpPorts", f"{drbd.port} is the DRBD port, which must stay "
                                                           f"reachable only from the peer; remove it")
    if drbd_on:
        _check_drbd_peer_loss(r, drbd, hb)
    if hb.udp_port is not None and hb.udp_port in fw.extra_udp_ports:
        r.problem(f"{PROJECT}:firewall.extraUdpPorts", f"{hb.udp_port} is Heartbeat's port, which must stay "
                                                       f"reachable only from the peer; remove it")
    if not fw.enabled:
        r.warn(f"{PROJECT}:firewall.enabled", "the firewall is off: Heartbeat and DRBD ports are open to anyone")
    if ipsec is not None and not ipsec.enabled:
        r.warn(f"{PROJECT}:ipsec.enabled", "IPsec is off: Heartbeat and DRBD traffic crosses the network in clear")


def _check_drbd_peer_loss(r: _Reader, drbd: DrbdSpec, hb: HeartbeatSpec) -> None:
    """DRBD must let go of a dead peer while Heartbeat's takeover still tries to promote this node: else
    drbddisk gives up, the takeover fails and the survivor serves no data."""
    key = f"{PROJECT}:drbd"
    if (hb.deadtime_ms is None or hb.keepalive_ms is None or r.has_problem(f"{PROJECT}:heartbeat.deadtime")
            or r.has_problem(f"{key}.pingInt") or r.has_problem(f"{key}.pingTimeout")):
        return  # the timings are already reported as wrong: no takeover time to compare with
    budget = drbd_detection_budget_ms(hb)
    timeout = drbd.effective_ping_timeout_ms
    waits = (f"Heartbeat's takeover waits for DRBD {_seconds(budget)} (heartbeat.deadtime "
             f"{_seconds(hb.deadtime_ms)} - keepalive {_seconds(hb.keepalive_ms)} + drbddisk's "
             f"{_seconds(DRBDDISK_RETRY_MS)} of retries - {_seconds(DRBD_PING_MARGIN_MS)} of margin)")
    # deadtime > 2 x keepalive leaves over 4 s: only a declared timeout can crowd out even pingInt 1
    if drbd.ping_timeout_ms is not None and 1000 + timeout > budget:
        largest = (budget - 1000) // 100 * 100
        r.problem(f"{key}.pingTimeout", f"{_show(format_ms(timeout))} is too long: with even pingInt 1, DRBD "
                                        f"gives up on a silent peer after {_seconds(1000 + timeout)}, but {waits}; "
                                        f"expected at most \"{format_ms(largest)}\", or a longer deadtime")
        return
    if drbd.ping_int_s is not None and drbd.ping_int_s * 1000 + timeout > budget:
        largest = (budget - timeout) // 1000
        r.problem(f"{key}.pingInt", f"{drbd.ping_int_s} is too long: DRBD gives up on a silent peer after pingInt "
                                    f"+ pingTimeout = {_seconds(drbd.ping_int_s * 1000 + timeout)}, but {waits}; "
                                    f"expected at most {largest}, or a longer deadtime")
