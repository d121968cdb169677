"""The pure parts of bench/refresh_scaling.py: telling drift from a clean refresh in the engine's output,
counting SSH handshakes in a trace, medians and ratios. No timing is measured here.

refresh_outputs/<case>.yaml: `output` is what `pulumi refresh --yes --skip-preview` printed on the lab stack
(line padding removed), `summary` and `changes` what the bench must read from it; a new case is a new file.
"""
import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.support.engine import REPO

CASES = sorted((Path(__file__).parent / "refresh_outputs").glob("*.yaml"))


def _bench_module():
    spec = importlib.util.spec_from_file_location("refresh_scaling", REPO / "bench" / "refresh_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench_module()


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_refresh_output(case):
    data = yaml.safe_load(case.read_text())
    summary = bench.refresh_summary(data["output"])
    assert summary == data["summary"], data["why"]
    assert bench.changes(summary) == data["changes"], data["why"]


def test_cases_cover_clean_drift_and_failure():
    kinds = [bool(yaml.safe_load(c.read_text())["changes"]) for c in CASES]
    assert False in kinds and True in kinds


def test_handshakes_counted_per_node():
    trace = ("1795598999.835 7463 ns22222 127.0.0.1:22222 handshake\n"
             "1795598999.845 7463 ns11111 127.0.0.1:22111 handshake\n"
             "1795599007.885 8154 ns11111 127.0.0.1:22111 handshake\n")
    assert bench.handshake_counts(trace) == {"ns11111": 2, "ns22222": 1}
    assert bench.handshake_counts("") == {}


def test_medians_and_ratios_to_one_cluster():
    batches = {1: [2.0, 2.4, 2.2], 2: [3.0, 3.3, 4.4], 4: [6.6, 5.5, 8.8]}
    per_stack = {1: [2.0, 2.4, 2.2], 2: [2.9, 3.0, 3.3, 3.2, 4.4, 4.0], 4: [5.0] * 11 + [8.8]}
    rows = bench.scaling_rows(batches, per_stack)
    assert [r["n"] for r in rows] == [1, 2, 4]
    by_n = {r["n"]: r for r in rows}
    assert by_n[1]["batch"] == pytest.approx(2.2) and by_n[1]["batch_ratio"] == pytest.approx(1.0)
    assert by_n[2]["batch"] == pytest.approx(3.3) and by_n[2]["batch_ratio"] == pytest.approx(1.5)
    assert by_n[4]["batch_ratio"] == pytest.approx(3.0) and by_n[4]["per_cluster"] == pytest.approx(1.65)
    assert by_n[2]["stack"] == pytest.approx(3.25) and by_n[2]["stack_max"] == pytest.approx(4.4)
    assert by_n[4]["stack_ratio"] == pytest.approx(5.0 / 2.2)
    lines = bench.markdown_rows(rows, runs=3)
    assert len(lines) == 3 and all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert lines[2] == ("| `refresh --skip-preview` of 4 stacks at once (median of 3): whole batch / each stack | "
                        "6.60 s (x3.00) / 5.00 s (x2.27) |")


def test_machine_busy_share_from_two_proc_stat_readings():
    # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks
    before = [100, 0, 50, 1000, 10, 0, 5, 0, 40, 0]
    after = [250, 0, 90, 1150, 20, 0, 15, 0, 90, 0]     # 200 busy, 160 idle (iowait counted idle)
    assert bench.busy_fraction(before, after) == pytest.approx(200 / 360)
    assert bench.busy_fraction(before, before) == 0.0
