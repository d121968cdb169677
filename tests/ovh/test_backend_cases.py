"""One scenario per file in tests/ovh/cases/, run against the emulator over loopback with python-ovh (REST)
or zeep (SOAP) unchanged.

A case file holds:
  backend:        rest | soapi
  routedTo:       where the failover IP 203.0.113.10/32 is routed at the start
  moveDelay:      seconds a move task takes in the emulator (default 0)
  consumerState:  state of the test's consumer key (default validated)
  credentials:    overrides of the client's credentials (application_key, application_secret, consumer_key,
                  soapi_password), to play wrong ones
  steps:          before the action, in order: {"where": {}} a where_routed call; {"fault": {...}} queued
                  through POST /lab/faults; {"startMove": {"to": S}} a move started by someone else;
                  {"clearCalls": true}
  action:         {"move": {"to": S, "timeout": T, "ip"?: X}} | {"where": {"ip"?: X}}
  expect:
    result:       the answer (a string for where; for move, a subset of MoveResult's fields)
    error:        {"type": exception class name, "contains": [substrings of the message], "attrs": {...}}
    routedTo:     where the account routes the IP afterwards
    calls:        exact counts of recorded calls by "METHOD /path" (query dropped; SOAP: "POST /soapi op")
    atLeast:      minimum counts, same keys
    callsTotal:   number of recorded calls other than GET /auth/time
    statuses:     exact counts of answers by HTTP status ("0": connection dropped)
    errorCodes:   exact counts of refusals by the API's errorCode
    soapUpdate:   the arguments of the recorded dedicatedFailoverUpdate
"""
import dataclasses
import json
import pathlib
import urllib.request
from collections import Counter

import pytest

import components.ovh as ovh_layer
from lab.ovh_emulator import start_emulator
from tests.ovh.support import (FAST_RETRY, IP, NODES, POLL, SOAPI_NIC, api_calls, count_calls, new_keys,
                               seed)

CASES = sorted((pathlib.Path(__file__).parent / "cases").glob("*.json"))


def _post(url: str, body: object) -> object:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _backend(kind: str, emulator, keys):
    if kind == "rest":
        return ovh_layer.RestBackend(endpoint=emulator.endpoint, application_key=keys["application_key"],
                                     application_secret=keys["application_secret"],
                                     consumer_key=keys["consumer_key"], request_timeout=5,
                                     poll_interval=POLL, retry=FAST_RETRY)
    return ovh_layer.SoapiBackend(emulator.soap_url, SOAPI_NIC, keys["soapi_password"], "ns11111.ovh.net",
                                  NODES, request_timeout=5, poll_interval=POLL, retry=FAST_RETRY)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: pathlib.Path):
    case = json.loads(path.read_text())
    expect = case["expect"]
    keys = new_keys()
    emulator = start_emulator(state=seed(keys, routed_to=case["routedTo"], move_delay=case.get("moveDelay", 0),
                                         consumer_state=case.get("consumerState", "validated")))
    try:
        backend = _backend(case["backend"], emulator, {**keys, **case.get("credentials", {})})
        for step in case.get("steps", []):
            if "where" in step:
                backend.where_routed(IP)
            elif "fault" in step:
                _post(emulator.url + "/lab/faults", step["fault"])
            elif "startMove" in step:
                emulator.state.move(IP, step["startMove"]["to"])
            elif step.get("clearCalls"):
                _post(emulator.url + "/lab/calls/clear", {})
            else:
                raise AssertionError(f"unknown step {step}")

        (action, args), = case["action"].items()
        ip = args.get("ip", IP)
        try:
            if action == "move":
                answer = backend.move(ip, args["to"], timeout=args["timeout"])
            elif action == "where":
                answer = backend.where_routed(ip)
            else:
                raise AssertionError(f"unknown action {action}")
        except ovh_layer.OvhError as err:
            assert "error" in expect, f"unexpected {type(err).__name__}: {err}"
            assert type(err).__name__ == expect["error"]["type"], f"{type(err).__name__}: {err}"
            for text in expect["error"].get("contains", []):
                assert text in str(err), f"{text!r} not in {str(err)!r}"
            for name, value in expect["error"].get("attrs", {}).items():
                assert getattr(err, name) == value, f"{name}={getattr(err, name)!r}"
        else:
            assert "error" not in expect, f"expected {expect['error']['type']}, got {answer}"
            if isinstance(expect["result"], dict):
                got = dataclasses.asdict(answer)
                assert {k: got[k] for k in expect["result"]} == expect["result"]
            else:
                assert answer == expect["result"]

        calls = emulator.calls()
        counts = count_calls(calls)
        for key, count in expect.get("calls", {}).items():
            assert counts[key] == count, f"{key}: {counts[key]} calls, expected {count}; all: {dict(counts)}"
        for key, count in expect.get("atLeast", {}).items():
            assert counts[key] >= count, f"{key}: {counts[key]} calls, expected at least {count}"
        if "callsTotal" in expect:
            assert len(api_calls(calls)) == expect["callsTotal"], api_calls(calls)
        if "statuses" in expect:
            statuses = Counter(str(c["status"]) for c in calls)
            assert {k: statuses[k] for k in expect["statuses"]} == expect["statuses"], dict(statuses)
        if "errorCodes" in expect:
            codes = Counter(c.get("errorCode") for c in calls if c.get("errorCode"))
            assert dict(codes) == expect["errorCodes"]
        if "soapUpdate" in expect:
            updates = [c["body"] for c in calls if isinstance(c.get("body"), dict)
                       and c["body"].get("operation") == "dedicatedFailoverUpdate"]
            assert [{k: u[k] for k in expect["soapUpdate"]} for u in updates] == [expect["soapUpdate"]]
        if "routedTo" in expect:
            assert emulator.state.ip_properties(IP)["routedTo"]["serviceName"] == expect["routedTo"]
    finally:
        emulator.stop()
