"""The acknowledged-write writer: verify() on one JSON case per file under writer/ (file lines joined by
newlines, acked numbers, expected verdict fields), and GUEST_SCRIPT run for real with this machine's python3,
fed on stdin as the drill does over SSH, against a tmpfs mounted for the test."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from drill import writer
from drill.writer import RECORD_SIZE, AckLog, parse_record, verify

CASES = sorted((Path(__file__).parent / "writer").glob("*.json"))
PYTHON3 = shutil.which("python3")
REPO = Path(writer.__file__).resolve().parents[1]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_verify_case(path):
    case = json.loads(path.read_text())
    assert "ok" in case["expected"], "every case states the verdict"
    verdict = verify("\n".join(case["lines"]), case["acked"]).as_dict()
    for key, value in case["expected"].items():
        assert verdict[key] == value, f"{key}: {verdict[key]!r}"


def test_the_cases_cover_the_brief():
    names = {p.stem for p in CASES}
    assert {"torn-last-line-not-acked", "acked-record-missing", "corrupt-middle-line",
            "no-records-none-acked"} <= names


def guest_record(n: int) -> bytes:
    """A record as the guest script makes it (its definitions, without running its main)."""
    namespace = {}
    exec(compile(writer.GUEST_SCRIPT.split("\ndef main(")[0], "guest", "exec"), namespace)
    return namespace["record"](n)


def test_a_guest_record_parses_back():
    """The record format lives twice (the guest script, the parser here): both must agree."""
    for n in (1, 42, 123456789):
        line = guest_record(n)
        assert len(line) == RECORD_SIZE and line.endswith(b"\n")
        assert parse_record(line[:-1].decode()) == (n, "")


def test_guest_command_quotes_the_path():
    assert writer.guest_command("/data/drill one.rec", 20) == "python3 - '/data/drill one.rec' 20"
    assert writer.guest_command("/data/d.rec", 0, 100) == "python3 - /data/d.rec 0 100"
    with pytest.raises(ValueError, match="interval_ms"):
        writer.guest_command("/data/d.rec", -1)


# ---------------------------------------------------------------- AckLog

def test_acklog_counts_only_whole_ack_lines(tmp_path):
    log_path = tmp_path / "acks.log"
    log_path.write_text("")
    log_path.chmod(0o644)                                      # an existing file becomes private too
    with AckLog(str(log_path)) as log:
        log.consume([b"start 4242 /data/d.rec\n", "ack 1\n", b"ack 2\n", "noise\n", b"ack 3\n",
                     b"ack 1\n", b"ack 12"])                   # a stream cut inside "ack 12"
    assert log.pid == 4242
    assert log.acked == [1, 2, 3, 1] and log.count == 4 and log.highest == 3
    assert log.out_of_order == [1]
    assert log.ignored == ["noise"]
    assert log.partial == "ack 12"
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    lines = log_path.read_text().splitlines()
    assert [l.split()[:2] for l in lines if l.startswith("ack ")] == [["ack", "1"], ["ack", "2"], ["ack", "3"],
                                                                    ["ack", "1"]]
    assert all(l.split()[2].isdigit() for l in lines if l.startswith("ack "))
    assert AckLog.read(str(log_path)) == [1, 2, 3, 1]


def test_acklog_reads_a_text_stream_with_a_stop_line(tmp_path):
    source = tmp_path / "out.txt"
    source.write_text("start 7 /x\nack 1\nstop SIGTERM 1\n")
    with open(source) as stream, AckLog(str(tmp_path / "acks.log")) as log:
        log.consume(stream)
    assert log.acked == [1] and log.stop_reason == "SIGTERM" and log.partial is None


# ---------------------------------------------------------------- the guest script, for real

def start_writer(path, *args):
    if PYTHON3 is None:
        pytest.skip("no python3 on PATH to run the guest script with")
    proc = subprocess.Popen([PYTHON3, "-", str(path), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(writer.GUEST_SCRIPT.encode())
    proc.stdin.close()                                         # `python3 -` runs the script at end of input
    guard = threading.Timer(60, proc.kill)                    # a hung writer cannot hang the test run
    guard.daemon = True
    guard.start()
    return proc, guard


def finish(proc, guard):
    try:
        proc.wait(timeout=60)
    finally:
        guard.cancel()
    return proc.returncode, proc.stderr.read().decode()


@pytest.fixture
def mounted(tmp_path):
    """A tmpfs mounted on a fresh directory: a mount point as /data is on the servers."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the writer refuses a directory that is not a mount point)")
    point = tmp_path / "data"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_counted_run_every_ack_is_on_disk(mounted, tmp_path):
    records = mounted / "drill.rec"
    proc, guard = start_writer(records, 0, 25)
    with AckLog(str(tmp_path / "acks.log")) as log:
        log.consume(proc.stdout)
    code, err = finish(proc, guard)
    assert code == 0, err
    assert log.pid == proc.pid and log.stop_reason == "count"
    assert log.acked == list(range(1, 26))
    assert records.stat().st_size == 25 * RECORD_SIZE
    assert stat.S_IMODE(records.stat().st_mode) == 0o644
    verdict = verify(records.read_bytes().decode(), AckLog.read(log.path))
    assert verdict.ok, verdict
    assert (verdict.records, verdict.highest, verdict.acked) == (25, 25, 25)
    assert not verdict.torn_tail and not verdict.gaps and not verdict.duplicates


def test_sigterm_stops_after_the_record_in_hand(mounted, tmp_path):
    records = mounted / "drill.rec"
    proc, guard = start_writer(records, 20)                  # until stopped, 20 ms apart
    with AckLog(str(tmp_path / "acks.log")) as log:
        for line in proc.stdout:
            log.feed(line)
            if log.highest >= 3:
                break
        proc.send_signal(signal.SIGTERM)
        log.consume(proc.stdout)
    code, err = finish(proc, guard)
    assert code == 0, err
    assert log.stop_reason == "SIGTERM"
    verdict = verify(records.read_bytes().decode(), log.acked)
    assert verdict.ok, verdict
    assert verdict.records == log.count == verdict.highest    # the last record written was acknowledged


def test_a_closed_stdout_stops_the_writer(mounted, tmp_path):
    """What an ended SSH session looks like from the server: the next ack fails with EPIPE."""
    records = mounted / "drill.rec"
    proc, guard = start_writer(records, 0)
    with AckLog(str(tmp_path / "acks.log")) as log:
        for line in proc.stdout:
            log.feed(line)
            if log.highest >= 3:
                break
        proc.stdout.close()
    code, err = finish(proc, guard)
    assert code == 0, err
    assert "stopped (stdout-closed)" in err and "Traceback" not in err and "Exception" not in err
    verdict = verify(records.read_bytes().decode(), log.acked)
    assert verdict.ok, verdict
    assert verdict.records >= log.count and not verdict.gaps and not verdict.torn_tail


def test_refuses_a_directory_that_is_not_a_mount_point(tmp_path):
    assert not os.path.ismount(tmp_path)
    records = tmp_path / "drill.rec"
    proc, guard = start_writer(records, 0, 5)
    out = proc.stdout.read()
    code, err = finish(proc, guard)
    assert code == 2 and out == b""
    assert f"its directory {tmp_path} is not a mount point" in err
    assert not records.exists()


def test_refuses_a_file_from_an_earlier_run(mounted):
    records = mounted / "drill.rec"
    records.write_text("rec 1\n")
    proc, guard = start_writer(records, 0, 5)
    out = proc.stdout.read()
    code, err = finish(proc, guard)
    assert code == 2 and out == b""
    assert "holds 6 bytes from an earlier run" in err
    assert records.read_bytes().decode() == "rec 1\n"


@pytest.mark.parametrize("args, message", [
    (["x"], "INTERVAL_MS 'x': expected a whole number in 0..60000"),
    (["10", "-1"], "COUNT '-1': expected a whole number"),
    ([], "usage: python3 - PATH INTERVAL_MS [COUNT]"),
])
def test_bad_arguments_are_named(tmp_path, args, message):
    if PYTHON3 is None:
        pytest.skip("no python3 on PATH to run the guest script with")
    done = subprocess.run([PYTHON3, "-", str(tmp_path / "d.rec"), *args], input=writer.GUEST_SCRIPT.encode(),
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr.decode()


def test_cli_checks_a_copied_file_against_a_log(tmp_path):
    """`python3 -m drill.writer RECORDS ACKLOG`: the check an operator reruns after the fact."""
    records = tmp_path / "copied.rec"
    records.write_bytes(guest_record(1) + guest_record(2) + b"rec 3 17")
    log_path = tmp_path / "acks.log"
    with AckLog(str(log_path)) as log:
        log.consume([b"ack 1\n", b"ack 2\n"])

    def run():
        return subprocess.run([sys.executable, "-m", "drill.writer", str(records), str(log_path)],
                              capture_output=True, text=True, timeout=60, cwd=REPO)

    done = run()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "records": 2, "highest": 2, "acked": 2, "acked_missing": [],
                                       "torn_tail": True, "corrupt": [], "gaps": [], "duplicates": []}
    with AckLog(str(log_path)) as log:
        log.feed(b"ack 3\n")
    done = run()
    assert done.returncode == 1 and json.loads(done.stdout)["acked_missing"] == [3]
