"""ha_clustermsg sent whole: our /etc/ha.d/shellfuncs over the package's real one (resource-agents, installed
here with heartbeat), with concurrent senders writing into a real FIFO the way mach_down and req_resource do
when a peer dies, read back block by block as Heartbeat reads them."""
import os
import subprocess
import threading
from pathlib import Path

import pytest

from components.render import clustermsg

PACKAGED = Path("/etc/ha.d/shellfuncs")
ROUNDS = 40


def _need_packaged():
    if not PACKAGED.is_file():
        pytest.skip(f"{PACKAGED} is missing: install resource-agents (heartbeat depends on it)")


def _read_blocks(fifo: Path, out: list) -> None:
    with open(fifo, "r") as stream:
        out.append(stream.read())


def _blocks(text: str):
    """Heartbeat's reading: a block is `>>>`, name=value lines, `<<<`. Returns (good blocks, bad lines)."""
    good, bad, current = [], [], None
    for line in text.splitlines():
        if line == ">>>":
            if current is not None:
                bad.append(line)          # a block started inside another: Heartbeat drops the message
            current = {}
        elif line == "<<<":
            if current is None:
                bad.append(line)
            else:
                good.append(current)
            current = None
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key] = value
        else:
            bad.append(line)
    return good, bad


def _senders(tmp_path: Path, prelude: str, shell: str = "sh"):
    """ROUNDS rounds of two senders at once into one FIFO; the blocks as Heartbeat would read them."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out: list = []
    reader = threading.Thread(target=_read_blocks, args=(fifo, out))
    reader.start()
    keep_open = os.open(fifo, os.O_WRONLY)     # the reader sees one stream across all the senders
    try:
        for i in range(ROUNDS):
            procs = [subprocess.Popen([shell, "-c", f'{prelude}\nha_clustermsg <<EOF\nt={who}\nround={i}\n'
                                                    f'info={"x" * 40}\nEOF\n'],
                                      env={"HA_FIFO": str(fifo), "PATH": os.environ["PATH"]})
                     for who in ("mach_down", "req_resource")]
            for proc in procs:
                assert proc.wait(timeout=30) == 0
    finally:
        os.close(keep_open)
        reader.join(timeout=30)
    return _blocks(out[0])


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_concurrent_senders_never_interleave(tmp_path, shell):
    _need_packaged()
    ours = tmp_path / "shellfuncs"
    ours.write_text(clustermsg.shellfuncs(distrib=str(PACKAGED)))
    good, bad = _senders(tmp_path, f". {ours}", shell)
    assert bad == [] and len(good) == 2 * ROUNDS
    assert sorted((b["t"], int(b["round"])) for b in good) == sorted(
        (who, i) for i in range(ROUNDS) for who in ("mach_down", "req_resource"))


def test_the_reading_catches_interleaved_blocks(tmp_path):
    """The check above can fail: a sender that writes its block line by line, slowly, interleaves."""
    slow = 'ha_clustermsg() { (echo ">>>"; sleep 0.05; cat -; sleep 0.05; echo "<<<") >> "$HA_FIFO"; }'
    good, bad = _senders(tmp_path, slow)
    assert bad and len(good) < 2 * ROUNDS


def test_ours_keeps_every_function_of_the_package(tmp_path):
    _need_packaged()
    ours = tmp_path / "shellfuncs"
    ours.write_text(clustermsg.shellfuncs(distrib=str(PACKAGED)))
    names = [line.split()[-1] for line in subprocess.run(
        ["bash", "-c", f". {PACKAGED}; declare -F"], capture_output=True, text=True, check=True).stdout.splitlines()]
    assert "ha_clustermsg" in names and "ha_log" in names
    check = "; ".join(f"command -v {n} >/dev/null || echo missing {n}" for n in names)
    result = subprocess.run(["sh", "-c", f". {ours}; {check}"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
