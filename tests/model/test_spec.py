"""parse_config: defaults, warnings, secrets handling, the ClusterSpec helpers."""
import dataclasses
import json
import secrets
from pathlib import Path

import pytest

from components import check_config
from components.spec import (CONCEALED, SECRET_KEYS, ClusterSpec, SpecError, drbd_detection_budget_ms,
                             drbd_ping_int_s, format_duration, format_ms, ipsec_generated_key_length,
                             ipsec_key_lengths, parse_config, parse_drbd_ping_int_s, parse_drbd_ping_timeout_ms,
                             parse_duration_ms)
from tests.model.support import concealed_values, ssh_private_key, stack, stack_config

REPO = Path(__file__).resolve().parents[2]


def minimal():
    """The least a stack must say; everything else takes its default."""
    values = {
        "ovh-ha-cluster:nodes": [
            {"name": "ns11111", "service": "ns11111.ovh.net", "address": "198.51.100.11", "interface": "eth0"},
            {"name": "ns22222", "service": "ns22222.ovh.net", "address": "198.51.100.22", "interface": "eth0"},
        ],
        "ovh-ha-cluster:failoverIp": {"address": "203.0.113.10"},
        "ovh-ha-cluster:drbd": {"disk": "/dev/sda3"},
        "ovh-ha-cluster:alerts": {"emails": ["admin@example.org"]},
        "ovh-ha-cluster:sshPrivateKey": CONCEALED,
        "ovh:endpoint": "ovh-eu",
        "ovh:applicationKey": CONCEALED,
        "ovh:applicationSecret": CONCEALED,
        "ovh:consumerKey": CONCEALED,
        "ovh-ha-cluster:agentConsumerKey": CONCEALED,
    }
    return values, {k for k in values if k in SECRET_KEYS}


def test_defaults_are_the_tutorials():
    spec = parse_config(*minimal())
    hb = spec.heartbeat
    assert (hb.keepalive_ms, hb.deadtime_ms, hb.warntime_ms, hb.initdead_ms) == (2000, 30000, 6000, 60000)
    assert (hb.udp_port, hb.auto_failback, hb.log_facility, hb.log_file) == (694, False, "local0", None)
    d = spec.drbd
    assert (d.enabled, d.resource, d.device, d.mount_point, d.fs_type, d.port) == \
        (True, "r0", "/dev/drbd0", "/data", "ext4", 7788)
    assert (d.protocol, d.sync_rate, d.after_sb_0pri, d.after_sb_1pri, d.after_sb_2pri) == \
        ("C", "20M", "disconnect", "disconnect", "disconnect")
    assert (d.fencing, d.handlers, d.meta_disk, d.initial_primary) == (None, {}, "internal", "ns11111")
    assert spec.failover_ip.initial_node == "ns11111" and spec.failover_ip.fail_back is False
    assert (spec.failover_ip.cidr, spec.failover_ip.is_block) == ("203.0.113.10/32", False)
    ip = spec.ipsec
    assert (ip.enabled, ip.backend, ip.aead, ip.encryption, ip.legacy, ip.key_epoch) == \
        (True, "xfrm", "rfc4106(gcm(aes))", None, False, 1)
    assert ip.spis == {"ns11111": 0x1001, "ns22222": 0x1002}
    assert (spec.firewall.enabled, spec.firewall.extra_tcp_ports) == (True, ())
    assert spec.nodes[0].ssh == dataclasses.replace(spec.nodes[0].ssh, user="root", port=22, host_key=None)
    assert (spec.ovh_api.backend, spec.ovh_api.endpoint) == ("rest", "ovh-eu")
    assert spec.alerts.sms.enabled is False
    assert spec.warnings == ()
    assert spec.secrets_set == frozenset({"ovh-ha-cluster:sshPrivateKey", "ovh-ha-cluster:agentConsumerKey", "ovh:applicationKey",
                                          "ovh:applicationSecret", "ovh:consumerKey"})


def test_drbd_initial_primary_follows_the_failover_ip():
    values, secret_keys = minimal()
    values["ovh-ha-cluster:failoverIp"] = {"address": "203.0.113.10", "initialNode": "ns22222"}
    assert parse_config(values, secret_keys).drbd.initial_primary == "ns22222"


def test_peer_and_node_lookup():
    spec = parse_config(*minimal())
    assert spec.peer("ns11111").name == "ns22222" and spec.peer("ns22222").name == "ns11111"
    assert spec.node("ns22222").address == "198.51.100.22"
    assert spec.node_names == ("ns11111", "ns22222")
    with pytest.raises(KeyError, match="no node named 'ns3'"):
        spec.peer("ns3")


def test_spec_is_frozen():
    spec = parse_config(*minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.heartbeat.deadtime_ms = 1000


def test_runtime_shapes_are_accepted():
    """What the Pulumi runtime hands over: scalars as strings, --path numbers and booleans typed."""
    values, secret_keys = minimal()
    values["ovh-ha-cluster:heartbeat"] = {"keepalive": "500ms", "deadtime": "3", "warntime": "1500ms",
                                          "initdead": 6, "udpPort": "694", "autoFailback": "true"}
    values["ovh-ha-cluster:ipsec"] = {"spis": {"ns11111": 4097, "ns22222": "0x1002"}, "keyEpoch": "2"}
    values["ovh-ha-cluster:ipsecKeys"] = json.dumps({"ns11111": secrets.token_hex(20),
                                                     "ns22222": "0x" + secrets.token_hex(36)})
    secret_keys.add("ovh-ha-cluster:ipsecKeys")
    spec = parse_config(values, secret_keys)
    assert (spec.heartbeat.keepalive_ms, spec.heartbeat.deadtime_ms, spec.heartbeat.auto_failback) == \
        (500, 3000, True)
    assert spec.ipsec.spis == {"ns11111": 4097, "ns22222": 4098} and spec.ipsec.key_epoch == 2


@pytest.mark.parametrize("raw,ms", [(2, 2000), ("30", 30000), ("500ms", 500), ("1500 MS", 1500),
                                    ("2s", None), (0.5, None), (0, None), ("0ms", None), (True, None),
                                    ("-1", None), ("fast", None)])
def test_durations_as_hacf_reads_them(raw, ms):
    assert parse_duration_ms(raw) == ms


@pytest.mark.parametrize("ms,text", [(2000, "2"), (500, "500ms"), (1500, "1500ms"), (60000, "60")])
def test_durations_render_back(ms, text):
    assert format_duration(ms) == text
    assert parse_duration_ms(text) == ms


RECOMMENDED = {"keepalive": "200ms", "deadtime": "800ms", "warntime": "500ms", "initdead": 2}
TUTORIAL = {"keepalive": 2, "deadtime": 30, "warntime": 6, "initdead": 60}


@pytest.mark.parametrize("heartbeat,drbd,declared,effective", [
    # DRBD's defaults (10 s + 500 ms) fit the tutorial's 30 s deadtime: 30 - 2 + 5 - 1 = 32 s
    (TUTORIAL, {}, (None, None), (10, 500)),
    # 800 ms - 200 ms + 5 s - 1 s = 4.6 s: the largest whole second with 500 ms beside it is 4
    (RECOMMENDED, {}, (None, None), (4, 500)),
    (RECOMMENDED, {"pingTimeout": "100ms"}, (None, 100), (4, 100)),
    (RECOMMENDED, {"pingTimeout": "1s"}, (None, 1000), (3, 1000)),
    (RECOMMENDED, {"pingInt": 4, "pingTimeout": "600ms"}, (4, 600), (4, 600)),    # exactly 4.6 s
    (RECOMMENDED, {"pingInt": "2s"}, (2, None), (2, 500)),
    ({"keepalive": "200ms", "deadtime": 1, "warntime": "500ms", "initdead": 2}, {}, (None, None), (4, 500)),
    ({"keepalive": 2, "deadtime": 5, "warntime": 3, "initdead": 10}, {}, (None, None), (6, 500)),
    (TUTORIAL, {"pingInt": "7", "pingTimeout": "1.5s"}, (7, 1500), (7, 1500)),
    (TUTORIAL, {"pingInt": "31s"}, (31, None), (31, 500)),                        # 31.5 s of 32
])
def test_drbd_peer_loss_timings(heartbeat, drbd, declared, effective):
    values, secret_keys = minimal()
    values["ovh-ha-cluster:heartbeat"] = heartbeat
    values["ovh-ha-cluster:drbd"] = {"disk": "/dev/sda3", **drbd}
    spec = parse_config(values, secret_keys)
    assert (spec.drbd.ping_int_s, spec.drbd.ping_timeout_ms) == declared
    assert (drbd_ping_int_s(spec.drbd, spec.heartbeat), spec.drbd.effective_ping_timeout_ms) == effective
    assert effective[0] * 1000 + effective[1] <= drbd_detection_budget_ms(spec.heartbeat)


def test_drbd_ping_rule_is_not_applied_when_drbd_is_off():
    values, secret_keys = minimal()
    values["ovh-ha-cluster:heartbeat"] = RECOMMENDED
    values["ovh-ha-cluster:drbd"] = {"enabled": False, "pingInt": 120, "pingTimeout": "30s"}
    spec = parse_config(values, secret_keys)
    assert (spec.drbd.ping_int_s, spec.drbd.ping_timeout_ms) == (120, 30000)


def test_no_derived_ping_int_when_nothing_fits():
    """parse_config refuses such a spec; a hand-made one makes the derivation fail rather than pick a bad value."""
    spec = parse_config(*minimal())
    fast = dataclasses.replace(spec.heartbeat, keepalive_ms=200, deadtime_ms=800)
    slow = dataclasses.replace(spec.drbd, ping_timeout_ms=30000)
    with pytest.raises(ValueError, match="no DRBD ping-int fits heartbeat deadtime 800 ms"):
        drbd_ping_int_s(slow, fast)


@pytest.mark.parametrize("raw,seconds", [(5, 5), ("5", 5), ("5s", 5), (" 12 S ", 12), ("2000ms", 2),
                                         ("1500ms", None), ("5.5s", None), (5.0, None), (True, None),
                                         ("fast", None)])
def test_drbd_ping_int_as_written(raw, seconds):
    assert parse_drbd_ping_int_s(raw) == seconds


@pytest.mark.parametrize("raw,ms", [("500ms", 500), ("1s", 1000), ("1.5s", 1500), ("0.1 s", 100), ("30S", 30000),
                                    ("550ms", 550), (5, None), ("5", None), (0.5, None), ("1.5ms", None),
                                    ("0.0001s", None), (True, None)])
def test_drbd_ping_timeout_as_written(raw, ms):
    assert parse_drbd_ping_timeout_ms(raw) == ms


@pytest.mark.parametrize("ms,text", [(500, "500ms"), (1000, "1s"), (1500, "1500ms"), (30000, "30s")])
def test_ping_timeouts_render_back(ms, text):
    assert format_ms(ms) == text
    assert parse_drbd_ping_timeout_ms(text) == ms


def test_legacy_algorithms_accepted_with_a_warning():
    spec, _values, _ = stack("legacy")
    assert (spec.ipsec.encryption, spec.ipsec.authentication, spec.ipsec.aead) == \
        ("cbc(des3_ede)", "hmac(md5)", None)
    assert any("ipsec.legacy" in w and "cbc(des3_ede) + hmac(md5)" in w for w in spec.warnings)
    assert ipsec_key_lengths(spec.ipsec) == (40,) and ipsec_generated_key_length(spec.ipsec) == 40


def test_modern_cipher_and_mac_need_no_legacy():
    values, secret_keys = minimal()
    values["ovh-ha-cluster:ipsec"] = {"encryption": "cbc(aes)", "authentication": "hmac(sha256)"}
    spec = parse_config(values, secret_keys)
    assert ipsec_key_lengths(spec.ipsec) == (48, 56, 64) and spec.warnings == ()


def test_aead_key_lengths():
    spec = parse_config(*minimal())
    assert ipsec_key_lengths(spec.ipsec) == (20, 28, 36) and ipsec_generated_key_length(spec.ipsec) == 36


@pytest.mark.parametrize("section,value,warning", [
    ("ovh-ha-cluster:ipsec", {"enabled": False}, "IPsec is off"),
    ("ovh-ha-cluster:firewall", {"enabled": False}, "the firewall is off"),
    ("ovh-ha-cluster:drbd", {"disk": "/dev/sda3", "protocol": "A"}, "protocol A acknowledges a write"),
    ("ovh-ha-cluster:alerts", None, "nobody hears about a failover"),
    ("ovh-ha-cluster:ovhApi", {"backend": "soapi"}, "legacy SOAP API"),
    ("ovh-ha-cluster:drbd", {"disk": "/dev/sda3", "fencing": "resource-only",
                             "handlers": {"fencePeer": "/usr/lib/heartbeat/drbd-peer-outdater -t 5"}},
     "/usr/libexec/heartbeat/drbd-peer-outdater is where Debian 12's heartbeat installs"),
])
def test_warnings(section, value, warning):
    values, secret_keys = minimal()
    if value is None:
        values.pop(section)
    else:
        values[section] = value
    spec = parse_config(values, secret_keys)
    assert [w for w in spec.warnings if warning in w], spec.warnings


def test_lab_shape_needs_no_drbd_disk_and_no_esp():
    spec, _values, _ = stack("lab")
    assert not spec.drbd.enabled and not spec.ipsec.enabled and spec.drbd.disk is None
    assert spec.ssh_key_file == ".lab/ssh/id_ed25519"
    assert spec.failover_ip.addresses == ("10.77.1.8", "10.77.1.9", "10.77.1.10", "10.77.1.11")
    assert spec.firewall.extra_tcp_ports == (80, 443)


def test_concealed_secrets_count_as_set():
    spec, values, secret_keys = stack("tutorial")
    assert "ovh-ha-cluster:sshPrivateKey" in spec.secrets_set
    assert isinstance(values["ovh-ha-cluster:sshPrivateKey"], str)  # revealed by the fixture


def _bad_secret_cases():
    """(key, value given with --secret, expected wording) with values generated now, all wrong."""
    token = secrets.token_hex(12)
    return [
        ("ovh-ha-cluster:sshPrivateKey", ssh_private_key(passphrase=token.encode()), "protected by a passphrase"),
        ("ovh-ha-cluster:sshPrivateKey", f"ssh-ed25519 AAAA{token}", "does not look like a private key"),
        ("ovh-ha-cluster:heartbeatAuthkey", f"{token} {token}", "contains spaces or control characters"),
        ("ovh-ha-cluster:heartbeatAuthkey", token[:10], "is 10 characters long"),
        ("ovh-ha-cluster:ipsecKeys", {"ns11111": secrets.token_hex(19)}, "is 19 bytes long"),
        ("ovh-ha-cluster:ipsecKeys", {"ns22222": f"zz{token}"}, "is not a hex string"),
        ("ovh-ha-cluster:ipsecKeys", {"ns3": secrets.token_hex(20)}, "unknown key"),
        ("ovh:applicationSecret", f"{token}\n{token}", "contains spaces or line breaks"),
    ]


@pytest.mark.parametrize("key,value,wording", _bad_secret_cases(), ids=lambda x: x if isinstance(x, str) and
                         len(x) < 40 and " " not in x else "")
def test_bad_secrets_are_reported_without_their_value(key, value, wording):
    values, secret_keys = minimal()
    values[key] = value
    secret_keys.add(key)
    with pytest.raises(SpecError) as caught:
        parse_config(values, secret_keys)
    text = str(caught.value)
    assert wording in text
    _assert_hidden(value, text)


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_secrets_in_plain_config_are_refused_without_their_value(key):
    values, secret_keys = minimal()
    value = ssh_private_key() if key.endswith("sshPrivateKey") else secrets.token_hex(20)
    if key.endswith("ipsecKeys"):
        value = {"ns11111": secrets.token_hex(20), "ns22222": secrets.token_hex(20)}
    values[key] = value
    secret_keys.discard(key)
    with pytest.raises(SpecError) as caught:
        parse_config(values, secret_keys)
    problems = [p for p in caught.value.problems if p.key == key]
    assert problems and "was given in plain config (value hidden)" in problems[0].message
    _assert_hidden(value, str(caught.value))


def _assert_hidden(value, text):
    parts = list(value.values()) if isinstance(value, dict) else [value]
    for part in parts:
        for piece in [part] + part.split():
            if len(piece) >= 8:
                assert piece not in text, "a secret value leaked into an error message"
                assert piece[:8] not in text, "the start of a secret value leaked into an error message"


def test_all_problems_come_at_once():
    values, secret_keys = minimal()
    values["ovh-ha-cluster:heartbeat"] = {"keepalive": 20, "udpPort": 0}
    values["ovh-ha-cluster:drbd"] = {"disk": "sda3"}
    values["ovh-ha-cluster:alerts"] = {"emails": ["nobody"]}
    with pytest.raises(SpecError) as caught:
        parse_config(values, secret_keys)
    keys = [p.key for p in caught.value.problems]
    assert keys == ["ovh-ha-cluster:drbd.disk", "ovh-ha-cluster:heartbeat.deadtime",
                    "ovh-ha-cluster:heartbeat.udpPort", "ovh-ha-cluster:alerts.emails[0]"]
    assert str(caught.value).startswith("the stack configuration has 4 problems:\n  - ovh-ha-cluster:drbd.disk: ")


def test_nodes_missing_entirely():
    values, secret_keys = minimal()
    del values["ovh-ha-cluster:nodes"]
    with pytest.raises(SpecError) as caught:
        parse_config(values, secret_keys)
    assert [p.key for p in caught.value.problems] == ["ovh-ha-cluster:nodes"]


def test_other_namespaces_are_ignored():
    values, secret_keys = minimal()
    values["aws:region"] = "eu-west-3"
    values["pulumi:tags"] = {"team": "ops"}
    assert isinstance(parse_config(values, secret_keys), ClusterSpec)


def test_example_prod_stack_only_lacks_its_secrets():
    """Pulumi.prod.yaml, as shipped, is valid but for the secrets an operator sets with --secret."""
    path = REPO / "Pulumi.prod.yaml"
    if not path.exists():
        pytest.skip(f"{path} does not exist in this checkout")
    with pytest.raises(SpecError) as caught:
        check_config.check(str(path))
    keys = {p.key for p in caught.value.problems}
    assert keys <= SECRET_KEYS, str(caught.value)
    assert "ovh-ha-cluster:sshPrivateKey" in keys


def test_fixture_stacks_are_valid_as_files():
    for name in ("tutorial", "lab", "legacy"):
        values, secret_keys = concealed_values(stack_config(name))
        assert isinstance(parse_config(values, secret_keys), ClusterSpec)
