"""Properties of the renderings that golden files do not show: key handling, per-node variants, refusals."""
import dataclasses
import secrets

import pytest

from components.render import agent, drbd, firewall, heartbeat, ipsec
from tests.model.support import stack


def test_key_placeholders_never_carry_keys():
    spec, _values, _ = stack("tutorial")
    keys = {n: secrets.token_hex(ipsec.key_bytes(spec.ipsec)) for n in spec.node_names}
    for node in spec.node_names:
        argv_text = " ".join(" ".join(a) for a in ipsec.xfrm_commands(spec, node))
        assert "@KEY:ns11111@" in argv_text and "@KEY:ns22222@" in argv_text
        filled = ipsec.xfrm_batch(spec, node, keys)
        assert "@" not in filled
        for name, key in keys.items():
            assert key not in argv_text
            assert f"0x{key.lower()}" in filled


def test_sa_towards_a_node_uses_its_spi_and_key():
    spec, _values, _ = stack("tutorial")
    keys = {n: secrets.token_hex(20) for n in spec.node_names}
    lines = ipsec.xfrm_batch(spec, "ns22222", keys).splitlines()
    towards_ns11111 = next(line for line in lines if "dst 192.168.20.20 proto esp" in line)
    assert "spi 0x00003d55" in towards_ns11111 and f"0x{keys['ns11111']}" in towards_ns11111


def test_cipher_and_mac_keys_are_split_cipher_first():
    spec, _values, _ = stack("legacy")
    node = spec.node_names[0]
    enc, mac = secrets.token_hex(24), secrets.token_hex(16)
    keys = {n: enc + mac for n in spec.node_names}
    text = ipsec.xfrm_batch(spec, node, keys)
    assert f"enc cbc(des3_ede) 0x{enc} auth-trunc hmac(md5) 0x{mac} 96" in text
    conf = ipsec.setkey_conf(spec, node, keys)
    assert f"-E 3des-cbc 0x{enc} -A hmac-md5 0x{mac};" in conf


@pytest.mark.parametrize("bad", ["00" * 19, "not hex", ""])
def test_fill_keys_refuses_bad_keys_without_showing_them(bad):
    spec, _values, _ = stack("tutorial")
    keys = {"ns11111": bad, "ns22222": secrets.token_hex(20)}
    with pytest.raises(ValueError) as caught:
        ipsec.xfrm_batch(spec, "ns11111", keys)
    assert "towards ns11111" in str(caught.value)
    if bad:
        assert bad not in str(caught.value)


def test_fill_keys_needs_both_keys():
    spec, _values, _ = stack("tutorial")
    with pytest.raises(ValueError, match="no IPsec key for the SA towards ns22222"):
        ipsec.xfrm_batch(spec, "ns11111", {"ns11111": secrets.token_hex(20)})


def test_setkey_cannot_express_chacha():
    spec, _values, _ = stack("tutorial")
    chacha = dataclasses.replace(spec, ipsec=dataclasses.replace(spec.ipsec, aead="rfc7539esp(chacha20,poly1305)"))
    assert "aead rfc7539esp(chacha20,poly1305) @KEY:ns11111@ 128" in ipsec.xfrm_batch(chacha, "ns22222")
    with pytest.raises(ValueError, match="no setkey name"):
        ipsec.setkey_conf(chacha, "ns11111")


def test_authkeys_refuses_keys_it_cannot_write():
    key = secrets.token_hex(32)
    assert heartbeat.authkeys(key).endswith(f"auth 1\n1 sha1 {key}\n")
    for bad in ("", f"{key} {key}", f"{key}\n"):
        with pytest.raises(ValueError) as caught:
            heartbeat.authkeys(bad)
        assert key not in str(caught.value)


def test_haresources_per_node_when_interfaces_differ():
    spec, _values, _ = stack("tutorial")
    nodes = (spec.nodes[0], dataclasses.replace(spec.nodes[1], interface="eno1"))
    mixed = dataclasses.replace(spec, nodes=nodes)
    with pytest.raises(ValueError, match="render haresources per node"):
        heartbeat.haresources(mixed)
    assert "ovh-failover-ip::10.10.10.10/32::eno1 " in heartbeat.haresources(mixed, "ns22222")
    assert "ovh-failover-ip::10.10.10.10/32::eth0 " in heartbeat.haresources(mixed, "ns11111")


def test_resource_group_order_and_extra_resources():
    spec, _values, _ = stack("tutorial")
    group = heartbeat.resource_group(spec, extra_resources=["apache2"])
    assert [g.split("::")[0] for g in group] == ["drbddisk", "Filesystem", "ovh-failover-ip", "apache2", "MailTo"]


def test_agent_argv_is_what_haresources_passes():
    spec, _values, _ = stack("lab")
    assert agent.argv(spec, "labnode1") == ["ovh-failover-ip", "10.77.1.8/30", "veth-lab"]
    line = heartbeat.haresources(spec).splitlines()[1]
    assert line.split()[1].split("::") == agent.argv(spec, "labnode1")


def test_credentials_file_is_read_by_python_ovh(tmp_path, monkeypatch):
    import ovh
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    ak, as_, ck = (secrets.token_hex(8), secrets.token_hex(16), secrets.token_hex(16))
    path = tmp_path / "ovh.conf"
    path.write_text(agent.credentials_file("ovh-eu", ak, as_, ck))
    client = ovh.Client(config_file=str(path))
    assert (client._application_key, client._application_secret, client._consumer_key) == (ak, as_, ck)
    with pytest.raises(ValueError):
        agent.credentials_file("ovh-eu", ak, "two\nlines", ck)


def test_agent_config_is_json_for_each_node():
    spec, _values, _ = stack("tutorial")
    import json
    for node in spec.node_names:
        data = json.loads(agent.config_file(spec, node))
        assert data["service"] == spec.node(node).service and data["failoverIp"] == "10.10.10.10/32"
        assert not any(word in json.dumps(data).lower() for word in ("secret", "consumer", "password"))


def test_drbd_file_refused_when_drbd_is_off():
    spec, _values, _ = stack("lab")
    with pytest.raises(ValueError, match="drbd.enabled: false"):
        drbd.resource_file(spec)


@pytest.mark.parametrize("keepalive_ms,deadtime_ms,declared,lines", [
    (2000, 30000, (None, None), ["ping-int 10;", "ping-timeout 5;"]),     # DRBD's defaults, written out
    (200, 800, (None, None), ["ping-int 4;", "ping-timeout 5;"]),         # sized to the recommended timings
    (200, 800, (None, 1000), ["ping-int 3;", "ping-timeout 10;"]),
    (2000, 30000, (7, 1500), ["ping-int 7;", "ping-timeout 15;"]),
])
def test_drbd_ping_settings_follow_heartbeat(keepalive_ms, deadtime_ms, declared, lines):
    spec, _values, _ = stack("tutorial")
    spec = dataclasses.replace(
        spec, heartbeat=dataclasses.replace(spec.heartbeat, keepalive_ms=keepalive_ms, deadtime_ms=deadtime_ms),
        drbd=dataclasses.replace(spec.drbd, ping_int_s=declared[0], ping_timeout_ms=declared[1]))
    text = drbd.resource_file(spec)
    net = text[text.index("  net {"):text.index("  }", text.index("  net {"))]
    assert [line.strip() for line in net.splitlines()[-2:]] == lines


def test_firewall_without_ipsec_still_limits_cluster_ports_to_the_peer():
    spec, _values, _ = stack("lab")
    rules = firewall.ruleset(spec, "labnode2")
    assert "ip saddr 10.77.0.11 udp dport 694 accept" in rules
    assert "secpath" not in rules and "esp" not in rules
