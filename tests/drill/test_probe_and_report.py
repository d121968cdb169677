"""The drill's prober against this machine's loopback, and how it reads an outage out of the probes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drill.run import Drill, Report, timeline

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="the prober sends ICMP from a raw socket: root only")
def test_probe_answers_from_loopback_and_marks_losses_for_a_silent_address():
    def run(*wrapper):
        out = subprocess.run([*wrapper, sys.executable, "-m", "drill.probe", "127.0.0.1", "--interval", "0.05",
                              "--duration", "0.6", "--timeout", "0.3"], cwd=REPO, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    answered = run()
    assert len(answered) >= 5 and all(p["answered"] and p["answered"] >= p["sent"] for p in answered)
    # in a fresh network namespace even loopback is down: nothing is sent anywhere, every probe is lost
    silent = run("unshare", "--net")
    assert len(silent) >= 5 and all(p["answered"] is None for p in silent)


class _Spec:
    class heartbeat:
        deadtime_ms = 1000

    class failover_ip:
        cidr, address = "203.0.113.10/32", "203.0.113.10"


def probes(pattern, start=100.0, step=0.1):
    """'1' answered, '0' lost, one probe per character."""
    return [{"seq": i, "sent": start + i * step, "answered": start + i * step + 0.001 if c == "1" else None}
            for i, c in enumerate(pattern)]


@pytest.mark.parametrize("pattern,crash,expect", [
    ("1111100000000011111", 100.45, (4, 14, 9)),     # an outage after the crash
    ("1111111111", 100.45, (9, None, 0)),            # no loss yet: no first answer after the gap
    ("1101111000001111", 100.65, (6, 12, 5)),        # a lost probe long before the crash is not the outage
])
def test_gap_finds_the_outage_after_the_crash(pattern, crash, expect):
    drill = Drill(_Spec, hosts=None, stack="lab")
    drill.probes = probes(pattern)
    last, first, lost = drill._gap(crash)
    assert (last["seq"] if last else None, first["seq"] if first else None, lost) == expect


def test_report_split_and_timeline_in_time_order():
    report = Report(stack="lab", failover_ip="203.0.113.10", crashed="ns11111", survivor="ns22222", crash_at=1000.0)
    report.moments = {"crash": 1000.0, "last_answer": 999.98, "peer_dead": 1001.1, "takeover": 1001.2,
                      "move_requested": 1001.4, "move_done": 1001.5, "ip_up": 1001.52, "first_answer": 1001.6}
    assert report.split == {"detection": 1.12, "takeover_to_move": 0.3, "ovh_move": 0.1, "ip_up_to_answer": 0.1}
    lines = timeline(report)
    assert lines[0].strip().startswith("-0.020 s  last answer") and "first answer again" in lines[-1]
    assert report.passed and not Report(stack="lab", failover_ip="x", problems=["split brain"]).passed


def test_events_are_taken_from_the_crash_on_and_the_peer_counts_as_back_only_after_its_return():
    class Follower:
        lines = [(990.0, "Nov 25 10:00:00 ns22222 heartbeat: [9]: info: Link ns11111:eth0 up."),
                 (1001.2, "Nov 25 10:00:11 ns22222 heartbeat: [9]: WARN: node ns11111: is dead"),
                 (1001.3, "2026-11-25T10:00:11.400Z ovh-failover-ip[7] INFO: moving failover IP 203.0.113.10/32 "
                          "from ns11111.ovh.net to ns22222.ovh.net"),
                 (1010.5, "Nov 25 10:00:20 ns22222 heartbeat: [9]: info: Link ns11111:eth0 up.")]

    drill = Drill(_Spec, hosts=None, stack="lab")
    drill._followers = [Follower]
    drill.report.crashed, drill.report.crash_at = "ns11111", 1000.0
    drill._collect_events("ns22222")
    assert drill.report.moments == {"peer_dead": 1001.2, "move_requested": 1795600811.4}
    drill.report.moments = {"restored": 1010.0}
    drill._collect_events("ns22222")
    assert drill.report.moments["peer_back"] == 1010.5
