#!/usr/bin/env python3
"""Failover interruption with the tutorial's Heartbeat timings and with ours, split into detection, takeover,
OVH move and the rest, for an emulated OVH move delay of 0 s and of 60 s (the real API's typical). Ratios from
one run on one machine.

    make lab-up && engine/run .venv/bin/python bench/failover.py [--delays 0,60] [--json FILE]

For each timing set it deploys the lab stack with those timings into a throwaway backend, waits for Heartbeat
to place the group, then runs the drill (`python -m drill --stack lab`) once per move delay, and destroys the
stack at the end. With the tutorial's timings the first start alone waits initdead, 60 s.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.engine import lab_stack  # noqa: E402

EMULATOR = "http://127.0.0.1:18080/1.0"
TIMINGS = {
    "tutorial": {"keepalive": 2, "deadtime": 30, "warntime": 6, "initdead": 60},
    "recommended": {"keepalive": "200ms", "deadtime": "800ms", "warntime": "500ms", "initdead": 2},
}
STATUS = "/etc/ha.d/resource.d/ovh-failover-ip 203.0.113.10/32 eth0 status"


def lab_post(path: str, body: dict) -> None:
    request = urllib.request.Request(EMULATOR + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def holder() -> list:
    out = []
    for host in ("ns11111", "ns22222"):
        proc = subprocess.run([str(REPO / "lab" / "run"), host, "sh", "-c", STATUS], capture_output=True, text=True,
                              timeout=30)
        if proc.stdout.strip() == "running":
            out.append(host)
    return out


def wait_for_a_holder(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(holder()) != 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"Heartbeat placed the group on {holder()} after {seconds:.0f} s; expected one node")
        time.sleep(1)


def drill(work: Path, name: str, stack_file: Path) -> dict:
    report = work / f"{name}.json"
    proc = subprocess.run([sys.executable, "-m", "drill", "--stack", "lab", "--stack-file", str(stack_file),
                           "--json", str(report)], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    print(proc.stdout, end="")
    if not report.exists():
        raise SystemExit(f"the drill wrote no report: {proc.stderr}")
    return json.loads(report.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="0,60", help="emulated OVH move delays, seconds")
    parser.add_argument("--json", help="write every drill report there")
    parser.add_argument("--only", choices=sorted(TIMINGS), help="one timing set only")
    parser.add_argument("--deadtime", help="with --only recommended: try another deadtime, e.g. 800ms")
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    if not (REPO / ".lab" / "hosts.json").exists():
        print("the lab is not up: run `make lab-up` first", file=sys.stderr)
        return 2
    key_file = json.loads((REPO / ".lab" / "hosts.json").read_text())["sshKeyFile"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="ovhha-failover-bench-") as tmp:
        work = Path(tmp)
        chosen = {k: dict(v) for k, v in TIMINGS.items() if args.only in (None, k)}
        if args.deadtime and "recommended" in chosen:
            chosen["recommended"].update(deadtime=args.deadtime)
        for label, timing in chosen.items():
            def tweak(config, timing=timing):
                config["ovh-ha-cluster:heartbeat"].update(timing)
            stack = lab_stack(work / label, key_file, tweak=tweak)
            try:
                lab_post("/lab/reset", {})
                stack.pulumi("up", "--yes")
                wait_for_a_holder(180)
                for delay in delays:
                    lab_post("/lab/settings", {"moveDelay": delay})
                    print(f"== {label} timings, OVH move delay {delay:g} s")
                    results[(label, delay, len(results))] = drill(work, f"{label}-{delay:g}-{len(results)}",
                                                                  stack.dir / "Pulumi.lab.yaml")
                    wait_for_a_holder(120)
            finally:
                lab_post("/lab/settings", {"moveDelay": 0})
                stack.pulumi("destroy", "--yes", check=False)
    print()
    print("| timings | OVH move delay | interruption | minus move delay | detection | takeover to move "
          "| OVH move | IP up to answer |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, delay, _), report in results.items():
        split = report["split"]
        cells = [f"{v:.2f} s" if v is not None else "?" for v in
                 (split["detection"], split["takeover_to_move"], split["ovh_move"], split["ip_up_to_answer"])]
        total = report["interruption"]
        print(f"| {label} ({chosen[label]['keepalive']}/{chosen[label]['deadtime']}) | {delay:g} s | "
              f"{total:.2f} s | {total - delay:.2f} s | " + " | ".join(cells) + " |")
    for delay in sorted(set(delays)):
        tut = [r["interruption"] for k, r in results.items() if k[:2] == ("tutorial", delay)]
        rec = [r["interruption"] for k, r in results.items() if k[:2] == ("recommended", delay)]
        if tut and rec and min(rec) > 0:
            print(f"ratio tutorial / recommended, move delay {delay:g} s: {max(tut) / max(rec):.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}-{k[1]:g}-{k[2]}": v for k, v in results.items()}, indent=2))
    failed = [k for k, v in results.items() if not v["passed"]]
    if failed:
        print(f"drills that failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
