"""The routing provider's decisions, one JSON file per case: diffs (routing_cases/) and input checks
(routing_checks/). What the engine makes of them is in test_engine_routing.py."""
import json
from pathlib import Path

import pytest

from components.ovh import routing_ops

HERE = Path(__file__).parent
DIFFS = sorted((HERE / "routing_cases").glob("*.json"))
CHECKS = sorted((HERE / "routing_checks").glob("*.json"))


@pytest.mark.parametrize("path", DIFFS, ids=[p.stem for p in DIFFS])
def test_diff(path):
    case = json.loads(path.read_text())
    expect = case["expect"]
    seen = []

    def observe(props):
        seen.append(props["credentials"])
        return case["observed"]

    result = routing_ops.diff(case["olds"], case["news"], observe if "observed" in case else None)
    assert sorted(result["changes"]) == sorted(expect["changes"])
    assert result["replaces"] == expect["replaces"]
    assert result["failBackFrom"] == expect["failBackFrom"]
    if "message" in expect:
        assert expect["message"] in (result["message"] or "")
    if "observedWith" in expect:  # unknown new credentials: the live read uses the stored ones
        assert [c["consumerKey"] for c in seen] == [expect["observedWith"]]
    if "observed" in case and case["news"].get("failBack") is True and not expect["replaces"]:
        assert seen, "with failBack the diff must look at where OVH routes the IP now"


@pytest.mark.parametrize("path", CHECKS, ids=[p.stem for p in CHECKS])
def test_check(path):
    case = json.loads(path.read_text())
    failures = dict(routing_ops.check(case["news"]))
    assert set(failures) == set(case["failures"]), failures
    for prop, text in case["failures"].items():
        assert text in failures[prop], (prop, failures[prop])
    if "neverShown" in case:
        assert all(case["neverShown"] not in reason for reason in failures.values())


def test_errors_name_the_ip_and_the_service():
    props = {"ip": "203.0.113.10", "service": "ns11111.ovh.net", "backend": "rest", "endpoint": "ovh-nowhere",
             "credentials": {"applicationKey": "k", "applicationSecret": "s", "consumerKey": "c"}}
    with pytest.raises(routing_ops.RoutingError) as err:
        routing_ops.route(props, "test", lambda m: None)
    text = str(err.value)
    assert "203.0.113.10" in text and "ns11111.ovh.net" in text and "ovh:endpoint" in text
    assert "nothing was sent" in text


def test_update_with_hand_over_moves_nothing_through_the_api(monkeypatch):
    """In a cluster a fail-back is Heartbeat's: update only records where OVH routes the IP."""
    case = json.loads((HERE / "routing_cases" / "diff-failover-with-failback-hand-over.json").read_text())
    moves, logs = [], []
    monkeypatch.setattr(routing_ops, "where_routed", lambda props: "ns22222.ovh.net")
    monkeypatch.setattr(routing_ops, "route", lambda *a, **k: moves.append(a) or {})
    outs = routing_ops.update(case["olds"], case["news"], logs.append)
    assert moves == [] and outs["routedTo"] == "ns22222.ovh.net"
    assert any("Heartbeat's hand-over brings it back" in line for line in logs)
    without = dict(case["news"], handOver=False)
    routing_ops.update(case["olds"], without, logs.append)
    assert len(moves) == 1, "outside a cluster failBack still moves it through the API"
