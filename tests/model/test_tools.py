"""The real tools accept what is rendered: drbdadm (8.4 parser), nft, ip xfrm, setkey, Heartbeat's pieces.

Everything runs in throwaway network/UTS namespaces; keys reach `ip` on stdin, as on the servers.
"""
import dataclasses
import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from components.render import agent, drbd, firewall, heartbeat, ipsec
from tests.model.support import require_root, run, stack

DRBD_STACKS = ("tutorial", "legacy")
ALL_STACKS = ("tutorial", "lab", "legacy")
IPSEC_STACKS = ("tutorial", "legacy")
# the parser an 8.4 kernel module gets: drbd-utils 9 dispatches to it when the loaded module is 8.4
DRBDADM_84 = shutil.which("drbdadm-84") or "/usr/lib/drbd/drbdadm-84"
# what the kernel (not iproute2's parser) says when it lacks ESP or an algorithm
KERNEL_REFUSAL = re.compile(r"Error: Requested .* not found|RTNETLINK answers: (No such file|Protocol not supported"
                            r"|Function not implemented)")


def _drbd_conf(tmp_path: Path, spec) -> Path:
    """A drbd.conf as Debian lays it out: global_common, then the resource file, both as rendered."""
    (tmp_path / "global_common.conf").write_text(drbd.global_common())
    res = tmp_path / f"{spec.drbd.resource}.res"
    res.write_text(drbd.resource_file(spec))
    conf = tmp_path / "drbd.conf"
    conf.write_text(f'include "{tmp_path}/global_common.conf";\ninclude "{res}";\n')
    return conf


def _need_drbdadm():
    if not os.access(DRBDADM_84, os.X_OK):
        pytest.skip(f"{DRBDADM_84} missing: `apt-get install drbd-utils`")


@pytest.mark.parametrize("name", DRBD_STACKS)
def test_drbdadm_84_parses_the_resource(tmp_path, name):
    _need_drbdadm()
    spec, _values, _ = stack(name)
    # `dump` of all resources parses a config written for other hosts; `dump r0` wants `uname -n` in it
    result = run([DRBDADM_84, "-c", str(_drbd_conf(tmp_path, spec)), "dump"])
    assert result.returncode == 0, result.stderr
    dump = re.sub(r"\s+", " ", result.stdout)
    for node in spec.nodes:
        assert f"on {node.name} {{ device {spec.drbd.device} minor 0; disk {spec.drbd.disk}; meta-disk internal; " \
               f"address ipv4 {node.address}:{spec.drbd.port}; }}" in dump
    assert f"resync-rate {spec.drbd.sync_rate};" in dump and "after-sb-2pri disconnect;" in dump
    assert "ping-int 10; ping-timeout 5;" in dump
    assert "usage-count no;" in dump


def test_drbdadm_84_reads_ping_settings_sized_to_heartbeat(tmp_path):
    """The recommended Heartbeat timings shorten ping-int; drbdadm takes the values in its own units."""
    _need_drbdadm()
    spec, _values, _ = stack("tutorial")
    spec = dataclasses.replace(
        spec, heartbeat=dataclasses.replace(spec.heartbeat, keepalive_ms=200, deadtime_ms=800),
        drbd=dataclasses.replace(spec.drbd, ping_timeout_ms=1200))
    result = run([DRBDADM_84, "-c", str(_drbd_conf(tmp_path, spec)), "dump"])
    assert result.returncode == 0, result.stderr
    assert "ping-int 3; ping-timeout 12;" in re.sub(r"\s+", " ", result.stdout)


def test_drbdadm_84_refuses_a_ping_int_out_of_its_range(tmp_path):
    """The range the spec enforces (1..120 s) is drbdadm's: one more second and it refuses the file."""
    _need_drbdadm()
    spec, _values, _ = stack("tutorial")
    spec = dataclasses.replace(spec, drbd=dataclasses.replace(spec.drbd, ping_int_s=121))
    result = run([DRBDADM_84, "-c", str(_drbd_conf(tmp_path, spec)), "dump"])
    assert result.returncode != 0 and "ping-int 121 => 121 out of range [1..120]" in result.stderr


def test_drbdadm_84_rejects_a_damaged_resource(tmp_path):
    """The check above can fail: one misspelt option and drbdadm refuses the file."""
    _need_drbdadm()
    spec, _values, _ = stack("tutorial")
    conf = _drbd_conf(tmp_path, spec)
    res = tmp_path / "r0.res"
    res.write_text(res.read_text().replace("resync-rate", "resync-rat"))
    result = run([DRBDADM_84, "-c", str(conf), "dump"])
    assert result.returncode != 0 and "resync-rat" in result.stderr


@pytest.mark.parametrize("node_index", [0, 1])
def test_drbd_node_sections_match_uname(tmp_path, node_index):
    """drbdadm picks the `on <host>` section whose name is `uname -n`: set it in a private UTS namespace."""
    _need_drbdadm()
    require_root("a UTS namespace")
    spec, _values, _ = stack("tutorial")
    node = spec.nodes[node_index]
    conf = _drbd_conf(tmp_path, spec)
    script = 'hostname "$1" && "$2" -c "$3" sh-ip "$4" && "$2" -c "$3" sh-ll-dev "$4"'
    result = run(["unshare", "--uts", "sh", "-c", script, "sh", node.name, DRBDADM_84, str(conf), "r0"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [node.address, spec.drbd.disk]


def _nft(ns: str, *args: str, stdin: str = None):
    return run(["ip", "netns", "exec", ns, "nft", *args], input=stdin)


def _need_nft():
    if shutil.which("nft") is None:
        pytest.skip("nft missing: `apt-get install nftables`")


@pytest.mark.parametrize("name", ALL_STACKS)
def test_nft_accepts_and_loads_the_ruleset(netns, name):
    _need_nft()
    spec, _values, _ = stack(name)
    ns = netns()
    for node in spec.node_names:
        rules = firewall.ruleset(spec, node)
        check = _nft(ns, "-c", "-f", "-", stdin=rules)
        assert check.returncode == 0, check.stderr
        for _ in range(2):  # a reload of the same file must succeed too (delete + recreate in one go)
            load = _nft(ns, "-f", "-", stdin=rules)
            assert load.returncode == 0, load.stderr
        listed = _nft(ns, "list", "table", "inet", "ovh_ha")
        assert listed.returncode == 0, listed.stderr
        text = listed.stdout
        assert "policy drop;" in text
        peer = spec.peer(node).address
        if spec.ipsec.enabled:
            assert f"ip saddr {peer} udp dport {spec.heartbeat.udp_port} meta ipsec exists accept" in text
            assert f"ip saddr {peer} ip protocol esp accept" in text
        else:
            assert f"ip saddr {peer} udp dport {spec.heartbeat.udp_port} accept" in text


def test_nft_reload_removes_stale_rules_atomically(netns):
    _need_nft()
    spec, _values, _ = stack("tutorial")
    ns = netns()
    stale = ("table inet ovh_ha {\n\tchain leftover {\n\t\ttcp dport 9999 accept\n\t}\n"
             "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n")
    assert _nft(ns, "-f", "-", stdin=stale).returncode == 0
    load = _nft(ns, "-f", "-", stdin=firewall.ruleset(spec, "ns11111"))
    assert load.returncode == 0, load.stderr
    text = _nft(ns, "list", "table", "inet", "ovh_ha").stdout
    assert "leftover" not in text and "9999" not in text and "policy drop;" in text
    # and the teardown removes the table, present or not
    for _ in range(2):
        down = _nft(ns, "-f", "-", stdin=firewall.teardown())
        assert down.returncode == 0, down.stderr
    assert _nft(ns, "list", "tables").stdout.strip() == ""


def _xfrm_keys(spec):
    return {n: secrets.token_hex(ipsec.key_bytes(spec.ipsec)) for n in spec.node_names}


def _batch(ns: str, text: str, force: bool = False):
    """`ip -batch -`: the keys travel on stdin, never in argv."""
    return run(["ip", "-n", ns] + (["-force"] if force else []) + ["-batch", "-"], input=text)


def _policies(ns: str):
    out = run(["ip", "-n", ns, "xfrm", "policy", "list"]).stdout
    found = set()
    for block in re.split(r"\n(?=src )", out.strip()):
        m = re.search(r"src (\S+) dst (\S+)\s+dir (\w+).*?tmpl src (\S+) dst (\S+)\s+proto (\w+) .*?mode (\w+)",
                      block, flags=re.S)
        if m:
            found.add(m.groups())
    return found


@pytest.mark.parametrize("name", IPSEC_STACKS)
def test_xfrm_policies_apply_and_read_back(netns, name):
    spec, _values, _ = stack(name)
    for node in spec.node_names:
        ns = netns()
        local, peer = spec.node(node).address, spec.peer(node).address
        text = ipsec.xfrm_batch(spec, node, _xfrm_keys(spec))
        policies = "".join(line + "\n" for line in text.splitlines() if line.startswith("xfrm policy"))
        result = _batch(ns, policies)
        assert result.returncode == 0, result.stderr
        assert _policies(ns) == {
            (f"{local}/32", f"{peer}/32", "out", local, peer, "esp", "transport"),
            (f"{peer}/32", f"{local}/32", "in", peer, local, "esp", "transport"),
        }
        # the delete batch removes them again (its SA deletions fail here: there are no SAs)
        _batch(ns, ipsec.xfrm_delete_batch(spec, node), force=True)
        assert _policies(ns) == set()


def _state_lines(spec, node):
    text = ipsec.xfrm_batch(spec, node, _xfrm_keys(spec))
    return [line for line in text.splitlines() if line.startswith("xfrm state")]


@pytest.mark.parametrize("name", IPSEC_STACKS)
def test_xfrm_state_lines_reach_the_kernel(netns, name):
    """iproute2 parses every SA line; the kernel either installs it or refuses it for lack of ESP/algorithm,
    never for a malformed request."""
    spec, _values, _ = stack(name)
    ns = netns()
    for line in _state_lines(spec, spec.node_names[0]):
        result = _batch(ns, line + "\n")
        assert result.returncode == 0 or KERNEL_REFUSAL.search(result.stderr), result.stderr


@pytest.mark.parametrize("name", IPSEC_STACKS)
def test_xfrm_states_apply_and_read_back(netns, name):
    spec, _values, _ = stack(name)
    ns = netns()
    node = spec.node_names[0]
    lines = _state_lines(spec, node)
    first = _batch(ns, lines[0] + "\n")
    if first.returncode != 0:
        pytest.skip(f"this kernel refuses ESP states ({first.stderr.strip()}): no esp4 or no "
                    f"{spec.ipsec.aead or spec.ipsec.encryption} here; the VM lab checks them")
    assert _batch(ns, "\n".join(lines[1:]) + "\n").returncode == 0
    out = run(["ip", "-n", ns, "xfrm", "state", "list"]).stdout
    for other in spec.node_names:
        assert f"spi 0x{spec.ipsec.spis[other]:08x}" in out
    assert out.count("mode transport") == 2


def test_setkey_parses_the_file(netns, tmp_path):
    setkey = shutil.which("setkey")
    if setkey is None:
        pytest.skip("setkey (ipsec-tools) is not installed, and no package in this machine's Debian bookworm "
                    "apt lists provides it (`apt-cache policy ipsec-tools` knows no such package); "
                    "the setkey rendering is covered by golden files only")
    spec, _values, _ = stack("legacy")
    path = tmp_path / "ipsec-tools.conf"
    path.write_text(ipsec.setkey_conf(spec, spec.node_names[0], _xfrm_keys(spec)))
    path.chmod(0o600)
    ns = netns()
    result = run(["ip", "netns", "exec", ns, setkey, "-n", "-f", str(path)])
    assert result.returncode == 0, result.stderr


def test_debian_heartbeat_has_what_the_files_name():
    """The plugins, resource scripts and daemon the rendered Heartbeat files refer to exist on Debian 12."""
    if not Path("/etc/ha.d/resource.d").is_dir():
        pytest.skip("heartbeat is not installed here: `apt-get install heartbeat drbd-utils`")
    spec, _values, _ = stack("tutorial")
    needed = [Path("/usr/lib/heartbeat/plugins/HBcomm/ucast.so"), Path("/usr/lib/heartbeat/plugins/HBauth/sha1.so"),
              Path("/usr/libexec/heartbeat/dopd"), Path("/usr/libexec/heartbeat/drbd-peer-outdater")]
    for resource in heartbeat.resource_group(spec):
        script = resource.split("::")[0]
        if script != agent.NAME:                 # ours: `pulumi up` installs it, no package does
            needed.append(Path("/etc/ha.d/resource.d") / script)
    missing = [str(p) for p in needed if not p.exists()]
    assert not missing, f"missing on this host: {missing}"
    assert "ucast eth0 " in heartbeat.ha_cf(spec, "ns11111") and "1 sha1 " in heartbeat.authkeys("k" * 16)
