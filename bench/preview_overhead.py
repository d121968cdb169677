#!/usr/bin/env python3
"""What a no-change `pulumi preview` of the lab stack costs next to the same engine previewing an empty
program, and how many SSH handshakes per host each operation makes. Ratios from one run on one machine.

    make lab-up && engine/run .venv/bin/python bench/preview_overhead.py [--runs 3]

Deploys the lab stack into a throwaway backend first (and destroys it at the end); needs the lab up.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.engine import Stack, lab_stack  # noqa: E402

EMPTY = "import pulumi\n\npulumi.export('nothing', None)\n"


def empty_stack(work: Path) -> Stack:
    src = work / "empty-src"
    src.mkdir()
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    (src / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "empty", "runtime": project["runtime"]}))
    (src / "__main__.py").write_text(EMPTY)
    stack = Stack(src, work / "empty")
    stack.init()
    return stack


def timed(stack: Stack, *args) -> float:
    start = time.monotonic()
    stack.pulumi(*args)
    return time.monotonic() - start


def handshakes(trace: Path) -> dict:
    counts = {}
    if trace.exists():
        for line in trace.read_text().splitlines():
            counts[line.split()[2]] = counts.get(line.split()[2], 0) + 1
        trace.unlink()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (REPO / ".lab" / "hosts.json").exists():
        print("the lab is not up: run `make lab-up` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ovhha-bench-") as tmp:
        work = Path(tmp)
        key_file = json.loads((REPO / ".lab" / "hosts.json").read_text())["sshKeyFile"]
        cluster, empty = lab_stack(work / "cluster", key_file), empty_stack(work)
        trace = Path(cluster.env["OVH_HA_SSH_TRACE"])
        try:
            cluster.pulumi("up", "--yes")
            handshakes(trace)
            empty.pulumi("up", "--yes")
            times = {"empty preview": [], "lab preview (no change)": []}
            for _ in range(args.runs):
                times["empty preview"].append(timed(empty, "preview"))
                times["lab preview (no change)"].append(timed(cluster, "preview"))
            counts = {}
            for operation in (("preview",), ("up", "--yes"), ("refresh", "--yes", "--skip-preview"),
                              ("refresh", "--yes")):
                cluster.pulumi(*operation)
                counts[" ".join(operation)] = handshakes(trace)
        finally:
            cluster.pulumi("destroy", "--yes", check=False)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"runs: {args.runs} each, medians")
    for name, value in med.items():
        print(f"  {name:28} {value:6.2f} s")
    print(f"  ratio lab/empty              {med['lab preview (no change)'] / med['empty preview']:6.2f}")
    print("SSH handshakes per host:")
    for operation, per_host in counts.items():
        print(f"  {operation:32} {json.dumps(per_host, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
