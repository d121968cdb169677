"""The emulator behaves like the OVH API where our clients depend on it: signatures, clock, errors, tasks, SMS,
SOAP, lab controls and state files. Clients are python-ovh, zeep and plain urllib, unchanged."""
import hashlib
import json
import os
import time
import urllib.error
import urllib.request

import pytest
import zeep
from ovh import exceptions as ox

from lab.ovh_emulator import start_emulator
from tests.ovh.support import CIDR, IP, QUOTED, SMS_SENDER, SMS_SERVICE, count_calls, new_keys, seed


def _request(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _signed_headers(keys, method, url, body, timestamp):
    text = "+".join([keys["application_secret"], keys["consumer_key"], method, url, body, str(timestamp)])
    return {"X-Ovh-Application": keys["application_key"], "X-Ovh-Consumer": keys["consumer_key"],
            "X-Ovh-Timestamp": str(timestamp), "X-Ovh-Signature": "$1$" + hashlib.sha1(text.encode()).hexdigest()}


def test_auth_time_needs_no_credentials(emulator):
    status, answer = _request(emulator.endpoint + "/auth/time")
    assert status == 200 and isinstance(answer, int) and abs(answer - time.time()) < 5


def test_signature_is_the_documented_sha1(emulator, keys):
    url = emulator.endpoint + "/ip/" + QUOTED
    good = _signed_headers(keys, "GET", url, "", int(time.time()))
    status, answer = _request(url, headers=good)
    assert (status, answer["routedTo"]) == (200, {"serviceName": "ns11111.ovh.net"})
    # the same request signed for another URL (or body, or method) is refused
    forged = _signed_headers(keys, "GET", emulator.endpoint + "/ip", "", int(time.time()))
    status, answer = _request(url, headers=forged)
    assert (status, answer["errorCode"], answer["message"]) == (400, "INVALID_SIGNATURE", "Invalid signature")


def test_unsigned_call_is_refused(emulator, keys):
    status, answer = _request(emulator.endpoint + "/ip/" + QUOTED,
                              headers={"X-Ovh-Application": keys["application_key"]})
    assert status == 401 and answer["message"] == "You must login first"


def test_skewed_client_clock_is_refused(emulator, keys, python_ovh):
    """A client whose clock is an hour off signs an out-of-time request."""
    url = emulator.endpoint + "/ip/" + QUOTED
    status, answer = _request(url, headers=_signed_headers(keys, "GET", url, "", int(time.time()) - 3600))
    assert (status, answer["errorCode"]) == (400, "QUERY_TIME_OUT")
    python_ovh._time_delta = -3600  # python-ovh's cached offset, as a wrong clock would have left it
    with pytest.raises(ox.BadParametersError, match="Query out of time"):
        python_ovh.get("/ip/" + QUOTED)


def test_python_ovh_corrects_its_clock_through_auth_time(emulator, keys):
    """python-ovh reads GET /auth/time before its first signed call and signs with the API's time: against
    an API clock an hour ahead it still works, where the local clock alone is refused."""
    from components.ovh import make_client
    emulator.faults.add({"kind": "clock_skew", "seconds": 3600}, emulator.state)
    url = emulator.endpoint + "/ip/" + QUOTED
    status, _ = _request(url, headers=_signed_headers(keys, "GET", url, "", int(time.time())))
    assert status == 400
    client = make_client(emulator.endpoint, keys["application_key"], keys["application_secret"],
                         keys["consumer_key"], timeout=5)
    assert client.get("/ip/" + QUOTED)["ip"] == CIDR
    assert 3590 <= client._time_delta <= 3610
    paths = [c["path"] for c in emulator.calls()]
    assert paths[-2:] == ["/auth/time", "/ip/" + QUOTED]


def test_second_move_while_pending_is_refused_with_the_api_error_shape(keys):
    emulator = start_emulator(state=seed(keys, move_delay=30))
    try:
        from components.ovh import make_client
        client = make_client(emulator.endpoint, keys["application_key"], keys["application_secret"],
                             keys["consumer_key"], timeout=5)
        task = client.post(f"/ip/{QUOTED}/move", to="ns22222.ovh.net")
        assert task["status"] == "todo" and task["function"] == "genericMoveFloatingIp"
        assert client.get(f"/ip/{QUOTED}/task", function="genericMoveFloatingIp", status="todo") == [task["taskId"]]
        with pytest.raises(ox.ResourceConflictError) as caught:
            client.post(f"/ip/{QUOTED}/move", to="ns33333.ovh.net")
        body = caught.value.response.json()
        assert set(body) == {"message", "class"} and "already pending" in body["message"]
        assert client.get(f"/ip/{QUOTED}")["routedTo"]["serviceName"] == "ns11111.ovh.net"
    finally:
        emulator.stop()


def test_move_becomes_done_after_the_delay(keys):
    emulator = start_emulator(state=seed(keys, move_delay=0.3))
    try:
        task = emulator.state.move(IP, "ns22222.ovh.net")
        assert emulator.state.task(IP, str(task["taskId"]))["status"] in ("todo", "doing")
        deadline = time.monotonic() + 10
        while emulator.state.task(IP, str(task["taskId"]))["status"] != "done":
            assert time.monotonic() < deadline, "the move never completed"
            time.sleep(0.05)
        assert emulator.state.ip_properties(IP)["routedTo"]["serviceName"] == "ns22222.ovh.net"
    finally:
        emulator.stop()


def test_route_hook_runs_when_the_move_is_due_without_anyone_polling(keys, tmp_path):
    """The lab network follows the account through this hook: it must fire at start (the seed's routing) and
    when a move task comes due, even though no client asks about the task any more."""
    record = tmp_path / "routes.txt"
    hook = ["sh", "-c", f'echo "$0 $1 $2" >> {record}', "{ip}", "{service}", "{address}"]
    emulator = start_emulator(state=seed(keys, move_delay=0.3), route_command=hook)
    try:
        deadline = time.monotonic() + 10
        def lines():
            return [line for line in (record.read_text().splitlines() if record.exists() else [])
                    if line.startswith(IP + " ")]

        while not lines():
            assert time.monotonic() < deadline, "the start-up routing was never announced"
            time.sleep(0.05)
        emulator.state.move(IP, "ns22222.ovh.net")
        while len(lines()) < 2:
            assert time.monotonic() < deadline, "the hook never ran for the completed move"
            time.sleep(0.05)
        assert lines() == [f"{IP} ns11111.ovh.net 192.0.2.11", f"{IP} ns22222.ovh.net 192.0.2.22"]
        done = [t for t in emulator.state.snapshot()["tasks"] if t["status"] == "done"]
        assert len(done) == 1 and done[0]["labDoneAt"] >= done[0]["labCreatedAt"] + 0.3
        assert {entry["exit"] for entry in emulator.route_hook.log} == {0}
    finally:
        emulator.stop()


def test_list_filters_failover_ips(python_ovh):
    assert python_ovh.get("/ip", ip=IP, type="failover") == [CIDR]
    assert python_ovh.get("/ip", ip="192.0.2.99", type="failover") == []
    assert python_ovh.get("/ip", ip="203.0.113.8/30", type="failover") == [CIDR]


def test_unknown_ip_is_not_found(python_ovh):
    with pytest.raises(ox.ResourceNotFoundError):
        python_ovh.get("/ip/192.0.2.99%2F32")


def test_sms_jobs_are_recorded(python_ovh, emulator):
    answer = python_ovh.post(f"/sms/{SMS_SERVICE}/jobs", message="failover", receivers=["+33600000001", "bogus"],
                             sender=SMS_SENDER, senderForResponse=False)
    assert answer["validReceivers"] == ["+33600000001"] and answer["invalidReceivers"] == ["bogus"]
    assert python_ovh.get(f"/sms/{SMS_SERVICE}/jobs") == answer["ids"]
    job = python_ovh.get(f"/sms/{SMS_SERVICE}/jobs/{answer['ids'][0]}")
    assert (job["sender"], job["receiver"], job["message"]) == (SMS_SENDER, "+33600000001", "failover")
    with pytest.raises(ox.BadParametersError, match="sender"):
        python_ovh.post(f"/sms/{SMS_SERVICE}/jobs", message="x", receivers=["+33600000001"], sender="NOTMINE")


def test_wsdl_is_served_and_zeep_reads_it(emulator, keys):
    client = zeep.Client(emulator.url + "/soapi?wsdl")
    session = client.service.login("lb00001-ovh", keys["soapi_password"])
    listing = client.service.dedicatedFailoverList(session, "ns11111.ovh.net")
    assert {(i.ip, i.routedTo) for i in listing} >= {("203.0.113.10", "192.0.2.11")}
    client.service.logout(session)
    with pytest.raises(zeep.exceptions.Fault, match="invalid session"):
        client.service.dedicatedFailoverList(session, "ns11111.ovh.net")
    logged = [c["body"] for c in emulator.calls() if c["path"] == "/soapi"]
    assert all("password" not in body and "session" not in body for body in logged)


def test_lab_controls(emulator, python_ovh):
    status, _ = _request(emulator.url + "/lab/routing", "POST", {"ip": IP, "routedTo": "ns33333.ovh.net"})
    assert status == 200
    assert python_ovh.get("/ip/" + QUOTED)["routedTo"]["serviceName"] == "ns33333.ovh.net"
    status, queued = _request(emulator.url + "/lab/faults", "POST",
                              [{"kind": "http_error", "status": 500, "path": "/sms/*"}])
    assert status == 200 and queued[0]["count"] == 1
    assert _request(emulator.url + "/lab/faults")[1] == queued
    status, answer = _request(emulator.url + "/lab/faults", "POST", {"kind": "meteor"})
    assert status == 400 and "unknown fault kind" in answer["message"]
    status, calls = _request(emulator.url + "/lab/calls")
    assert count_calls(calls)["GET /ip/" + QUOTED] == 1
    status, state = _request(emulator.url + "/lab/state")
    assert "***" in json.dumps(state["applications"]) and state["failoverIps"][CIDR]["routedTo"] == "ns33333.ovh.net"
    assert _request(emulator.url + "/lab/reset", "POST", {})[0] == 200
    assert _request(emulator.url + "/lab/calls")[1] == [] and _request(emulator.url + "/lab/faults")[1] == []
    assert emulator.state.ip_properties(IP)["routedTo"]["serviceName"] == "ns11111.ovh.net"


def test_state_file_is_loaded_and_written_back(tmp_path):
    keys = new_keys()
    path = tmp_path / "state.json"
    path.write_text(json.dumps(seed(keys)))
    emulator = start_emulator(state_file=str(path), persist=True)
    try:
        emulator.state.move(IP, "ns22222.ovh.net")
        emulator.state.settle()
    finally:
        emulator.stop()
    saved = json.loads(path.read_text())
    assert saved["failoverIps"][CIDR]["routedTo"] == "ns22222.ovh.net"
    assert [t["status"] for t in saved["tasks"]] == ["done"]
    assert os.stat(path).st_mode & 0o777 == 0o600
