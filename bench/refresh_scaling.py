#!/usr/bin/env python3
"""How `pulumi refresh --skip-preview` time grows when an operator refreshes 1, 2 and 4 clusters at once.
Figures from one machine; never asserted by tests.

    make lab-up && engine/run .venv/bin/python bench/refresh_scaling.py [--runs 3]

The lab has one cluster (two hosts), so "N clusters" are N stacks of the program holding the same state: the
lab stack deployed once with `up` into a throwaway backend, then exported and imported as stack `lab` of N-1
more backends, each with the same config file. All N refreshes therefore read the same two hosts: this
measures the engine, SSH and probe cost per cluster with the hosts' sshd shared, a worst case for the hosts.
At the end only the original stack is destroyed (it removes the cluster from the hosts); the copies are
removed with `stack rm --force`, since destroying one would delete the same files a second time.
Needs the lab and the OVH API emulator up.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.engine import RUN, Stack, lab_stack  # noqa: E402

COUNTS = (1, 2, 4)
REFRESH = ("refresh", "--yes", "--skip-preview")
TIMEOUT = 600.0          # one batch of refreshes, seconds
STOP_GRACE = 20.0        # after SIGINT, before SIGKILL


# ---- pure logic (tests/bench) ----

def refresh_summary(output: str) -> Optional[Dict[str, int]]:
    """The engine's closing "Resources:" block as {"unchanged": 32} or {"updated": 1, "unchanged": 31};
    None when the output has no such block (the operation failed before its end).

    The progress lines above it carry "~ ... refreshing" for every resource read, changed or not, so only
    the summary tells drift apart."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Resources:"]
    if not starts:
        return None
    summary = {}
    for line in lines[starts[-1] + 1:]:
        if not line.strip():
            break
        match = re.fullmatch(r"\s*(?:[~+\-]|\+-|<=>|<-|>)?\s*(\d+) ([a-z][a-z -]*?)\s*", line)
        if match is None:
            break
        summary[match.group(2)] = summary.get(match.group(2), 0) + int(match.group(1))
    return summary


def changes(summary: Optional[Dict[str, int]]) -> Dict[str, int]:
    """What a refresh reported besides unchanged resources (empty: no drift)."""
    if summary is None:
        return {"no summary": 1}
    return {kind: n for kind, n in summary.items() if kind != "unchanged" and n}


def handshake_counts(trace_text: str) -> Dict[str, int]:
    """SSH handshakes per node in an OVH_HA_SSH_TRACE file ("time pid node host:port what" per line)."""
    counts: Dict[str, int] = {}
    for line in trace_text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[4] == "handshake":
            counts[fields[2]] = counts.get(fields[2], 0) + 1
    return counts


def scaling_rows(batches: Dict[int, List[float]], per_stack: Dict[int, List[float]]) -> List[dict]:
    """Medians per N and their ratios to N=1 (the smallest N given)."""
    base_n = min(batches)
    base_batch = statistics.median(batches[base_n])
    base_stack = statistics.median(per_stack[base_n])
    rows = []
    for n in sorted(batches):
        batch, stack = statistics.median(batches[n]), statistics.median(per_stack[n])
        rows.append({"n": n, "batch": batch, "batch_ratio": batch / base_batch, "per_cluster": batch / n,
                     "stack": stack, "stack_ratio": stack / base_stack, "stack_max": max(per_stack[n])})
    return rows


def markdown_rows(rows: List[dict], runs: int) -> List[str]:
    """Rows for the README's Benchmarks table (| measure | value |), one per N."""
    out = []
    for row in rows:
        n = row["n"]
        out.append(f"| `refresh --skip-preview` of {n} stack{'s' if n > 1 else ''} at once (median of {runs}): "
                   f"whole batch / each stack | {row['batch']:.2f} s (x{row['batch_ratio']:.2f}) / "
                   f"{row['stack']:.2f} s (x{row['stack_ratio']:.2f}) |")
    return out


def busy_fraction(before: List[int], after: List[int]) -> float:
    """Share of the machine's CPU time spent busy between two readings of /proc/stat's "cpu" line."""
    delta = [b - a for a, b in zip(before, after)]
    idle = delta[3] + delta[4]          # idle, iowait
    total = sum(delta[:8])              # guest time is already counted in user
    return (total - idle) / total if total else 0.0


# ---- running refreshes at once ----

@dataclass
class Run:
    """One refresh of one stack, started in its own session so that it and its plugins can be stopped."""

    stack: Stack
    log: Path
    proc: Optional[subprocess.Popen] = None
    start: float = 0.0
    end: Optional[float] = None
    status: Optional[int] = None
    cpu: float = 0.0
    output: str = field(default="", repr=False)

    args: tuple = REFRESH

    def launch(self):
        cmd = [str(RUN), "pulumi", *self.args, "--non-interactive", "--color=never", "--stack", self.stack.name]
        with open(self.log, "w") as out:
            self.start = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=self.stack.dir, env=self.stack.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def reap(self):
        # wait4 rather than Popen.wait: its rusage covers the engine and the plugins it reaped.
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.end = time.monotonic()
        self.status = self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime

    @property
    def seconds(self) -> float:
        return self.end - self.start


LIVE: List[Run] = []      # refreshes started and not yet reaped, for stop_all
LIVE_LOCK = threading.Lock()


def stop_all():
    """Ends whatever refresh is still running, with its plugins: SIGINT (the engine cancels and unlocks the
    stack), then SIGKILL to the session's process group after STOP_GRACE."""
    with LIVE_LOCK:
        running = [r for r in LIVE if r.proc is not None and r.status is None]
    if running:
        print(f"stopping {len(running)} engine run(s) still going", file=sys.stderr)
    for run in running:
        try:
            os.killpg(run.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE
    while any(r.status is None for r in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for run in running:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)   # also plugins left behind by an engine that exited
        except ProcessLookupError:
            pass
    for run in running:
        for _ in range(50):
            if run.status is not None:
                break
            time.sleep(0.1)


def refresh_at_once(stacks: List[Stack], logs: Path, tag: str, args: tuple = REFRESH):
    """Runs `pulumi <args>` (a refresh) on every stack at the same time; returns (batch wall time, the runs)."""
    runs = [Run(stack, logs / f"{tag}-{i}.log", args=args) for i, stack in enumerate(stacks)]
    threads = [threading.Thread(target=r.reap, daemon=True) for r in runs]
    with LIVE_LOCK:
        LIVE[:] = runs
    begin = time.monotonic()
    for run, thread in zip(runs, threads):
        run.launch()
        thread.start()
    for thread in threads:
        thread.join(max(0.0, begin + TIMEOUT - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        stop_all()
        raise RuntimeError(f"{tag}: refreshes still running after {TIMEOUT:.0f} s; stopped")
    wall = max(r.end for r in runs) - begin
    with LIVE_LOCK:
        LIVE.clear()
    for run in runs:
        run.output = run.log.read_text()
    return wall, runs


def cpu_times() -> List[int]:
    with open("/proc/stat") as fh:
        return [int(v) for v in fh.readline().split()[1:]]


def take_handshakes(stack: Stack) -> Dict[str, int]:
    trace = Path(stack.env["OVH_HA_SSH_TRACE"])
    if not trace.exists():
        return {}
    counts = handshake_counts(trace.read_text())
    trace.unlink()
    return counts


# ---- the bench ----

def lab_is_up() -> Optional[str]:
    """None when the netns lab and the OVH API emulator both answer, else what is missing."""
    lab = subprocess.run([sys.executable, str(REPO / "lab" / "lab.py"), "status"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    if lab.returncode != 0 or not (REPO / ".lab" / "hosts.json").exists():
        return "the netns lab is not up"
    emulator = subprocess.run([sys.executable, "-m", "lab.ovh_emulator", "status"], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
    if emulator.returncode != 0 or "NOT answering" in emulator.stdout:
        return "the OVH API emulator is not up or not answering"
    return None


def new_copy(original: Stack, work: Path, key_file: str) -> Stack:
    """A stack named like the original in a backend of its own, with the same config file (its secrets decrypt
    with the same passphrase).

    Not another stack name in the original's backend: `stack import` refuses state whose URNs name another
    stack ("is from a different stack (lab != lab2)") unless forced."""
    copy = lab_stack(work, key_file, name=original.name)
    shutil.copy(original.dir / f"Pulumi.{original.name}.yaml", copy.dir / f"Pulumi.{copy.name}.yaml")
    return copy


def fill_copy(original: Stack, copy: Stack, work: Path):
    """The original's state (export), imported into the copy."""
    export = work / "import.json"
    with os.fdopen(os.open(export, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(original.export())
    copy.pulumi("stack", "import", "--stack", copy.name, "--file", str(export))
    export.unlink()


def check_clean(runs: List[Run], expected: Optional[int], problems: List[str], tag: str) -> Optional[int]:
    """Notes failures and drift; returns the unchanged count (the same for every copy of one state)."""
    for i, run in enumerate(runs):
        summary = refresh_summary(run.output)
        if run.status != 0:
            tail = "\n      ".join(run.output.strip().splitlines()[-12:])
            problems.append(f"{tag} stack {i}: refresh failed (exit {run.status}):\n      {tail}")
            continue
        found = changes(summary)
        if found:
            problems.append(f"{tag} stack {i}: refresh reported changes {found} (log {run.log})")
        elif expected is not None and summary.get("unchanged") != expected:
            problems.append(f"{tag} stack {i}: {summary.get('unchanged')} unchanged, expected {expected}")
        else:
            expected = summary.get("unchanged")
    return expected


def bench(work: Path, runs: int, keep: dict) -> int:
    key_file = json.loads((REPO / ".lab" / "hosts.json").read_text())["sshKeyFile"]
    logs = work / "logs"
    logs.mkdir()
    original = lab_stack(work / "stack-0", key_file)
    stacks: List[Stack] = [original]
    try:
        _, (up,) = refresh_at_once([original], logs, "up", args=("up", "--yes"))
        if up.status != 0:
            raise RuntimeError(f"pulumi up failed ({up.status}):\n{up.output}")
        for i in range(1, max(COUNTS)):
            stacks.append(new_copy(original, work / f"stack-{i}", key_file))
            fill_copy(original, stacks[-1], work / f"stack-{i}")

        problems: List[str] = []
        # One untimed refresh per stack, one after the other: each program copy compiles its modules, and
        # every copy must read back a cluster with nothing changed before anything is timed.
        unchanged = None
        for i, stack in enumerate(stacks):
            _, warm = refresh_at_once([stack], logs, f"warmup-{i}")
            unchanged = check_clean(warm, unchanged, problems, "warm-up")
            take_handshakes(stack)
        if problems:
            print("the copies do not refresh cleanly before timing:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1

        batches: Dict[int, List[float]] = {n: [] for n in COUNTS}
        per_stack: Dict[int, List[float]] = {n: [] for n in COUNTS}
        cpu: Dict[int, List[float]] = {n: [] for n in COUNTS}
        busy: Dict[int, List[float]] = {n: [] for n in COUNTS}
        shakes: Dict[int, List[Dict[str, int]]] = {n: [] for n in COUNTS}
        for run_no in range(1, runs + 1):
            for n in COUNTS:
                tag = f"run{run_no}-n{n}"
                before = cpu_times()
                wall, done = refresh_at_once(stacks[:n], logs, tag)
                busy[n].append(busy_fraction(before, cpu_times()))
                unchanged = check_clean(done, unchanged, problems, tag)
                batches[n].append(wall)
                per_stack[n].extend(r.seconds for r in done)
                cpu[n].extend(r.cpu for r in done)
                shakes[n].extend(take_handshakes(s) for s in stacks[:n])
                print(f"  run {run_no} N={n}: batch {wall:5.2f} s, stacks "
                      + " ".join(f"{r.seconds:.2f}" for r in done) + " s", flush=True)
        report(runs, batches, per_stack, cpu, busy, shakes, unchanged, problems)
        return 1 if problems else 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):     # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        stop_all()
        for stack in stacks[1:]:   # never destroyed: that would delete the original's files a second time
            stack.pulumi("stack", "rm", "--force", "--yes", "--stack", stack.name, check=False)
        if not destroy(original):   # also after a failed `up`, which may have created part of the cluster
            print(f"the original stack could not be destroyed: the cluster may still be on the lab hosts; its "
                  f"backend is kept in {work / 'stack-0'} (PULUMI_BACKEND_URL=file://{original.backend}, "
                  f"passphrase in lab/passphrase, run `engine/run pulumi destroy --stack lab` from "
                  f"{original.dir})", file=sys.stderr)
            keep["work"] = True


def destroy(original: Stack) -> bool:
    done = original.pulumi("destroy", "--yes", check=False)
    if done.returncode != 0 and "locked" in (done.stdout + done.stderr):
        # A refresh killed mid-way leaves its lock behind; the backend is ours and nothing else runs on it.
        for lock in (original.backend / ".pulumi" / "locks").rglob("*.json"):
            lock.unlink()
        done = original.pulumi("destroy", "--yes", check=False)
    if done.returncode != 0:
        print(f"destroy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", file=sys.stderr)
    return done.returncode == 0


def report(runs, batches, per_stack, cpu, busy, shakes, unchanged, problems):
    rows = scaling_rows(batches, per_stack)
    print()
    print(f"pulumi refresh --yes --skip-preview, N stacks at once, {runs} runs each, medians; "
          f"{os.cpu_count()} CPUs")
    print("The N stacks hold copies of ONE lab cluster: every refresh reads the same two hosts (ns11111, ns22222)")
    print("through the same sshd, so this is the engine + SSH + probe cost per cluster with the hosts shared,")
    print("a worst case for the hosts; N real clusters would each have their own two servers.")
    print(f"  {'N':>2} {'batch':>8} {'x N=1':>6} {'per cluster':>12} {'each stack':>11} {'x N=1':>6} "
          f"{'slowest':>8} {'CPU/refresh':>12} {'machine busy':>13}")
    for row in rows:
        n = row["n"]
        print(f"  {n:>2} {row['batch']:>6.2f} s {row['batch_ratio']:>6.2f} {row['per_cluster']:>10.2f} s "
              f"{row['stack']:>9.2f} s {row['stack_ratio']:>6.2f} {row['stack_max']:>6.2f} s "
              f"{statistics.median(cpu[n]):>10.2f} s {statistics.median(busy[n]):>12.0%}")
    print("  (CPU/refresh: user+system seconds of the engine and the plugins it reaped, median; machine busy:")
    print("   share of all CPUs busy during the batch, lab hosts' sshd and emulator included, median)")
    print("SSH handshakes per host per refresh:")
    for n in COUNTS:
        seen = sorted({json.dumps(c, sort_keys=True) for c in shakes[n]})
        print(f"  N={n}: {' or '.join(seen)}  ({len(shakes[n])} refreshes)")
    if problems:
        print(f"NOT CLEAN: {len(problems)} refresh(es) failed or reported changes:")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"drift: none; every refresh reported {unchanged} unchanged resources and nothing else")
    print("\nREADME rows:")
    for line in markdown_rows(rows, runs):
        print(line)
    print(f"| `refresh --skip-preview`: CPU per refresh (engine + plugins) at 1 / {max(COUNTS)} at once | "
          f"{statistics.median(cpu[min(COUNTS)]):.2f} s / {statistics.median(cpu[max(COUNTS)]):.2f} s |")
    print(f"| machine CPU busy during the batch at 1 / {max(COUNTS)} at once ({os.cpu_count()} CPUs) | "
          f"{statistics.median(busy[min(COUNTS)]):.0%} / {statistics.median(busy[max(COUNTS)]):.0%} |")
    per_host = sorted({json.dumps(c, sort_keys=True) for n in COUNTS for c in shakes[n]})
    if len(per_host) == 1:
        value = ", ".join(f"{host} {count}" for host, count in json.loads(per_host[0]).items())
        print(f"| SSH handshakes per host per refresh, any N | {value} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    missing = lab_is_up()
    if missing:
        print(f"{missing}: run `make lab-up` first (under `flock /work/lab.lock`)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)
    work = Path(tempfile.mkdtemp(prefix="ovhha-refresh-bench-"))
    keep = {"work": False}   # set when the work directory holds the only state of a cluster still deployed
    try:
        return bench(work, args.runs, keep)
    except KeyboardInterrupt as stop:
        print(f"interrupted ({stop or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        return 130
    finally:
        if not keep["work"]:
            shutil.rmtree(work, ignore_errors=True)


def _interrupted(signum, _frame):
    """SIGTERM ends the bench through its clean-up, as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
