"""Credentials the python-ovh way (explicit, environment, ovh.conf), endpoints by name or URL, and SMS."""
import pytest

import components.ovh as ovh_layer
from components.ovh import OvhConfigError, OvhError, make_client, send_sms
from tests.ovh.support import FAST_RETRY, IP, SMS_SENDER, SMS_SERVICE


def test_credentials_from_an_ovh_conf_whose_endpoint_is_a_url(emulator, keys, tmp_path, monkeypatch):
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "custom.conf"
    conf.write_text(f"[default]\nendpoint={emulator.endpoint}\n\n[{emulator.endpoint}]\n"
                    f"application_key={keys['application_key']}\napplication_secret={keys['application_secret']}\n"
                    f"consumer_key={keys['consumer_key']}\n")
    backend = ovh_layer.RestBackend(config_file=str(conf), retry=FAST_RETRY)
    assert backend.where_routed(IP) == "ns11111.ovh.net"


def test_credentials_from_the_environment(emulator, keys, monkeypatch):
    monkeypatch.setenv("OVH_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("OVH_APPLICATION_KEY", keys["application_key"])
    monkeypatch.setenv("OVH_APPLICATION_SECRET", keys["application_secret"])
    monkeypatch.setenv("OVH_CONSUMER_KEY", keys["consumer_key"])
    assert ovh_layer.RestBackend(retry=FAST_RETRY).where_routed(IP) == "ns11111.ovh.net"


def test_endpoint_names_and_bad_endpoints(monkeypatch, tmp_path):
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ovh.conf of the machine's user
    assert ovh_layer.register_endpoint("ovh-eu") == "ovh-eu"
    with pytest.raises(OvhConfigError, match="'ovh-mars' is neither one of python-ovh's endpoint names"):
        make_client("ovh-mars", "k", "s", "c")
    with pytest.raises(OvhConfigError, match="OVH credentials for ovh-eu"):
        make_client("ovh-eu", "key-without-secret", None, None, config_file="/nonexistent")


def test_sms_job_recorded(emulator, python_ovh):
    answer = send_sms(python_ovh, SMS_SERVICE, "ns22222 took over 203.0.113.10/32", ["+33600000001"],
                      sender=SMS_SENDER, retry=FAST_RETRY)
    assert answer["validReceivers"] == ["+33600000001"]
    job, = emulator.state.data["smsJobs"]
    assert (job["service"], job["sender"], job["receiver"], job["message"]) == \
        (SMS_SERVICE, SMS_SENDER, "+33600000001", "ns22222 took over 203.0.113.10/32")
    body = [c for c in emulator.calls() if c["path"] == f"/sms/{SMS_SERVICE}/jobs"][0]["body"]
    assert body["senderForResponse"] is False and body["noStopClause"] is True


def test_sms_retried_after_a_server_error(emulator, python_ovh):
    emulator.faults.add({"kind": "http_error", "status": 500, "path": "/sms/*"}, emulator.state)
    send_sms(python_ovh, SMS_SERVICE, "alert", ["+33600000001"], sender=SMS_SENDER, retry=FAST_RETRY)
    assert [c["status"] for c in emulator.calls() if c["path"].startswith("/sms/")] == [500, 200]


def test_sms_bad_input(emulator, python_ovh):
    with pytest.raises(OvhConfigError, match="alerts.sms.recipients"):
        send_sms(python_ovh, SMS_SERVICE, "alert", [])
    with pytest.raises(OvhError, match="The sender NOPE does not exist"):
        send_sms(python_ovh, SMS_SERVICE, "alert", ["+33600000001"], sender="NOPE", retry=FAST_RETRY)


def test_missing_consumer_key_is_a_configuration_error(emulator, keys, monkeypatch, tmp_path):
    for name in ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    backend = ovh_layer.RestBackend(endpoint=emulator.endpoint, application_key=keys["application_key"],
                                    application_secret=keys["application_secret"], retry=FAST_RETRY)
    with pytest.raises(OvhConfigError, match="OVH credentials incomplete, GET /ip"):
        backend.where_routed(IP)
    assert emulator.calls() == []  # nothing sent
