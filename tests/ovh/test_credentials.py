"""Least-privilege consumer keys: the rules per role (one file per case in tests/ovh/rules/), the request the
API receives, and the emulator refusing what the rules leave out while the role's own calls pass."""
import json
import pathlib
import urllib.request

import pytest

import components.ovh as ovh_layer
from components.ovh import OvhAuthError, OvhConfigError, make_client, resilient_call
from tests.ovh.support import FAST_RETRY, IP, OTHER_IP, POLL, QUOTED, SMS_SERVICE

RULE_CASES = sorted((pathlib.Path(__file__).parent / "rules").glob("*.json"))


@pytest.mark.parametrize("path", RULE_CASES, ids=[p.stem for p in RULE_CASES])
def test_rules(path):
    case = json.loads(path.read_text())
    if "error" in case:
        with pytest.raises(OvhConfigError) as caught:
            ovh_layer.rules_for(case["role"], case["ip"], case.get("smsService"))
        assert case["error"] in str(caught.value)
    else:
        assert ovh_layer.rules_for(case["role"], case["ip"], case.get("smsService")) == case["expect"]


def _validated_key(emulator, keys, rules):
    """Request a key with `rules`, check the API received exactly them, validate it as the owner would."""
    answer = ovh_layer.request_credential(rules, endpoint=emulator.endpoint, application_key=keys["application_key"],
                                          application_secret=keys["application_secret"], retry=FAST_RETRY)
    assert answer["state"] == "pendingValidation"
    sent = [c for c in emulator.calls() if c["path"] == "/auth/credential"][-1]
    assert sent["method"] == "POST" and sent["body"]["accessRules"] == rules
    client = make_client(emulator.endpoint, keys["application_key"], keys["application_secret"],
                         answer["consumerKey"], timeout=5)
    with pytest.raises(OvhAuthError) as caught:  # not usable before the owner validates it
        resilient_call(client, "GET", f"/ip/{QUOTED}", retry=FAST_RETRY)
    assert caught.value.error_code == "NOT_CREDENTIAL"
    with urllib.request.urlopen(answer["validationUrl"], timeout=5) as response:
        assert json.loads(response.read())["state"] == "validated"
    return client


def _refused(client, method, path, body=None):
    with pytest.raises(OvhAuthError) as caught:
        resilient_call(client, method, path, body, retry=FAST_RETRY)
    assert caught.value.error_code == "NOT_GRANTED_CALL" and "This call has not been granted" in str(caught.value)


def test_node_key_allows_the_agent_calls_only(emulator, keys):
    client = _validated_key(emulator, keys, ovh_layer.node_rules(IP, SMS_SERVICE))
    assert resilient_call(client, "GET", f"/ip/{QUOTED}")["routedTo"]["serviceName"] == "ns11111.ovh.net"
    task = resilient_call(client, "POST", f"/ip/{QUOTED}/move", {"to": "ns22222.ovh.net"})
    resilient_call(client, "GET", f"/ip/{QUOTED}/task?function=genericMoveFloatingIp&status=todo")
    assert resilient_call(client, "GET", f"/ip/{QUOTED}/task/{task['taskId']}")["status"] == "done"
    ovh_layer.send_sms(client, SMS_SERVICE, "took over", ["+33600000001"], sender="OVHHA")
    calls_before = len(emulator.calls())
    _refused(client, "GET", "/ip?ip=203.0.113.10&type=failover")          # no account-wide listing
    _refused(client, "GET", "/ip/" + OTHER_IP.replace("/", "%2F"))          # another IP
    _refused(client, "POST", "/ip/" + OTHER_IP.replace("/", "%2F") + "/move", {"to": "ns11111.ovh.net"})
    _refused(client, "POST", "/sms/sms-other-1/jobs", {"message": "x", "receivers": ["+33600000001"]})
    _refused(client, "GET", f"/sms/{SMS_SERVICE}/jobs")                     # sending, not reading
    refused = emulator.calls()[calls_before:]
    assert [c["status"] for c in refused] == [403] * 5   # each refused once: no retry


def test_operator_key_covers_the_rest_backend(emulator, keys):
    client = _validated_key(emulator, keys, ovh_layer.operator_rules(IP))
    backend = ovh_layer.RestBackend(client, poll_interval=POLL, retry=FAST_RETRY)
    assert backend.where_routed(IP) == "ns11111.ovh.net"
    assert backend.move(IP, "ns22222.ovh.net", timeout=5).status == "done"
    _refused(client, "POST", f"/sms/{SMS_SERVICE}/jobs", {"message": "x", "receivers": ["+33600000001"]})
    with pytest.raises(OvhAuthError):
        backend.move(OTHER_IP, "ns11111.ovh.net", timeout=5)


def test_credential_request_needs_a_known_application(emulator):
    with pytest.raises(OvhAuthError) as caught:
        ovh_layer.request_credential(ovh_layer.node_rules(IP), endpoint=emulator.endpoint,
                                     application_key="0000000000000000", application_secret="x", retry=FAST_RETRY)
    assert caught.value.error_code == "INVALID_KEY"
