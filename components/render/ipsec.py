"""The IPsec link: transport-mode ESP between the two node addresses, one SA per direction.

Keys never appear in rendered argument lists: those carry placeholders (`@KEY:<node>@`, or `@ENCKEY:<node>@`
and `@AUTHKEY:<node>@` for cipher + MAC) and `fill_keys` swaps the real keys in only inside text that goes
to a host's stdin (`ip -batch -`) or into a 0600 file (setkey), never into a command line.

The key named after a node protects the traffic *towards* that node, under the SPI `ipsec.spis[node]`.
"""
import re
from typing import List, Mapping, Optional

from components.render import MANAGED
from components.spec import AEADS, CIPHERS, MACS, ClusterSpec, IpsecSpec, decode_hex_key, ipsec_generated_key_length, \
    ipsec_key_lengths

ICV_BITS = 128          # AEAD tag length (rfc4106 allows 64, 96 or 128: take the strongest)
SETKEY_PATH = "/etc/ipsec-tools.conf"
_PLACEHOLDER = re.compile(r"@(KEY|ENCKEY|AUTHKEY):([^@\s]+)@")


def key_bytes(ipsec: IpsecSpec) -> int:
    """Length of the key to generate per direction: AES-256 (+ salt) for GCM, cipher + MAC key otherwise."""
    return ipsec_generated_key_length(ipsec)


def _algorithm_args(ipsec: IpsecSpec, towards: str) -> List[str]:
    if ipsec.aead:
        return ["aead", ipsec.aead, f"@KEY:{towards}@", str(ICV_BITS)]
    trunc = MACS[ipsec.authentication][1]
    return ["enc", ipsec.encryption, f"@ENCKEY:{towards}@",
            "auth-trunc", ipsec.authentication, f"@AUTHKEY:{towards}@", str(trunc)]


def _spi(spec: ClusterSpec, node_name: str) -> str:
    return f"0x{spec.ipsec.spis[node_name]:08x}"   # as `ip xfrm state` prints it


def xfrm_commands(spec: ClusterSpec, node_name: str) -> List[List[str]]:
    """argv lists (with key placeholders) that set up `node_name`'s side: both SAs, then both policies, so
    that no policy demands an SA that does not exist yet.

    The kernel cannot change an SA's key in place: a new key means xfrm_delete_commands, then these."""
    ipsec = spec.ipsec
    local, peer = spec.node(node_name), spec.peer(node_name)
    commands = []
    for src, dst in ((peer, local), (local, peer)):
        commands.append(["ip", "xfrm", "state", "add", "src", src.address, "dst", dst.address, "proto", "esp",
                         "spi", _spi(spec, dst.name), "mode", "transport"] + _algorithm_args(ipsec, dst.name))
    for src, dst, direction in ((local, peer, "out"), (peer, local, "in")):
        commands.append(["ip", "xfrm", "policy", "add", "src", f"{src.address}/32", "dst", f"{dst.address}/32",
                         "dir", direction, "tmpl", "src", src.address, "dst", dst.address, "proto", "esp",
                         "mode", "transport"])
    return commands


def xfrm_delete_commands(spec: ClusterSpec, node_name: str) -> List[List[str]]:
    """Undo xfrm_commands: policies first (so traffic is not left demanding a missing SA), then the SAs."""
    local, peer = spec.node(node_name), spec.peer(node_name)
    commands = [["ip", "xfrm", "policy", "delete", "src", f"{src.address}/32", "dst", f"{dst.address}/32",
                 "dir", direction] for src, dst, direction in ((local, peer, "out"), (peer, local, "in"))]
    commands += [["ip", "xfrm", "state", "delete", "src", src.address, "dst", dst.address, "proto", "esp",
                  "spi", _spi(spec, dst.name)] for src, dst in ((peer, local), (local, peer))]
    return commands


def _batch(commands: List[List[str]]) -> str:
    return "".join(" ".join(argv[1:]) + "\n" for argv in commands)   # `ip -batch` lines omit the leading `ip`


def xfrm_batch(spec: ClusterSpec, node_name: str, keys: Optional[Mapping[str, str]] = None) -> str:
    """Input for `ip -batch -`. With `keys` ({node: hex}) the result is secret; without, placeholders stay."""
    text = _batch(xfrm_commands(spec, node_name))
    return fill_keys(spec.ipsec, text, keys) if keys is not None else text


def xfrm_delete_batch(spec: ClusterSpec, node_name: str) -> str:
    return _batch(xfrm_delete_commands(spec, node_name))


def setkey_conf(spec: ClusterSpec, node_name: str, keys: Optional[Mapping[str, str]] = None) -> str:
    """/etc/ipsec-tools.conf for hosts that still load SAs with setkey(8), in the tutorial's layout.

    It owns the host's whole SA and policy database (`flush; spdflush;`). On Linux, setkey's hmac-sha2 MACs
    truncate to 96 bits where the xfrm rendering uses RFC 4868's lengths: both nodes must use one backend.
    """
    ipsec = spec.ipsec
    local, peer = spec.node(node_name), spec.peer(node_name)
    if ipsec.aead:
        setkey_name = AEADS[ipsec.aead][2]
        if setkey_name is None:
            raise ValueError(f"{ipsec.aead} has no setkey name; use the xfrm backend")

        def algorithms(towards: str) -> str:
            return f"-E {setkey_name} @KEY:{towards}@"
    else:
        def algorithms(towards: str) -> str:
            return (f"-E {CIPHERS[ipsec.encryption][2]} @ENCKEY:{towards}@ "
                    f"-A {MACS[ipsec.authentication][2]} @AUTHKEY:{towards}@")
    lines = ["#!/usr/sbin/setkey -f", f"# {SETKEY_PATH} on {local.name}, {MANAGED}", "flush;", "spdflush;"]
    for src, dst in ((peer, local), (local, peer)):
        lines.append(f"add {src.address} {dst.address} esp {_spi(spec, dst.name)} -m transport "
                     f"{algorithms(dst.name)};")
    lines.append(f"spdadd {local.address} {peer.address} any -P out ipsec esp/transport//require;")
    lines.append(f"spdadd {peer.address} {local.address} any -P in ipsec esp/transport//require;")
    text = "\n".join(lines) + "\n"
    return fill_keys(ipsec, text, keys) if keys is not None else text


def fill_keys(ipsec: IpsecSpec, text: str, keys: Mapping[str, str]) -> str:
    """Replace key placeholders with `0x<hex>` keys. Errors name the node, never the key."""
    lengths = ipsec_key_lengths(ipsec)
    decoded = {}

    def key_for(node: str) -> bytes:
        if node not in decoded:
            if node not in keys:
                raise ValueError(f"no IPsec key for the SA towards {node}")
            raw = decode_hex_key(keys[node]) if isinstance(keys[node], str) else None
            if raw is None or len(raw) not in lengths:
                raise ValueError(f"the IPsec key towards {node} is not {' or '.join(map(str, lengths))} bytes "
                                 f"of hex (value hidden)")
            decoded[node] = raw
        return decoded[node]

    def replace(match: "re.Match[str]") -> str:
        kind, node = match.groups()
        raw = key_for(node)
        if kind == "KEY":
            part = raw
        else:
            mac_len = MACS[ipsec.authentication][0]
            part = raw[:len(raw) - mac_len] if kind == "ENCKEY" else raw[len(raw) - mac_len:]
        return "0x" + part.hex()

    return _PLACEHOLDER.sub(replace, text)
