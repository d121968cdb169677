"""The data side of a drill on a DRBD cluster: a writer on the active node's DRBD filesystem while it crashes,
and, on the survivor, every record the writer had acknowledged.

The writer (drill/writer.py) appends numbered records, fsync()s each and only then prints `ack <n>`; the ack
travels over SSH to this machine, which logs it before the crash can happen. With protocol C, fsync returns
once both nodes' disks have the write, so an acknowledged record missing on the survivor is lost data."""
import shlex
import threading
import time
from pathlib import Path
from typing import Optional

from drill import writer

START_TIMEOUT = 60.0    # the writer's `start` line (python3 on an emulated CPU)
WARM_ACKS = 20          # acknowledgements seen, and seconds of writing, before the crash: writes are in
WARM_SECONDS = 5.0      # flight when it comes
WARM_TIMEOUT = 60.0
INTERVAL_MS = 10


class DataCheck:
    def __init__(self, hosts, spec, work_dir: Path, interval_ms: int = INTERVAL_MS):
        self.hosts = hosts
        self.mount_point = spec.drbd.mount_point.rstrip("/") or "/"
        self.work_dir = Path(work_dir)
        self.interval_ms = interval_ms
        self.path: Optional[str] = None
        self.acks: Optional[writer.AckLog] = None
        self._channel = None
        self._reader: Optional[threading.Thread] = None

    def start(self, node: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.path = f"{self.mount_point}/drill-{stamp}.rec"
        self.acks = writer.AckLog(str(self.work_dir / f"acks-{stamp}.log"))
        transport = self.hosts._session(node).client.get_transport()
        channel = transport.open_session()
        channel.exec_command(writer.guest_command(self.path, self.interval_ms))
        channel.sendall(writer.GUEST_SCRIPT.encode())
        channel.shutdown_write()               # `python3 -` starts once its input ends
        self._channel = channel
        self._reader = threading.Thread(target=self._read, args=(channel.makefile("rb"),), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while self.acks.pid is None:
            if time.monotonic() > deadline or channel.exit_status_ready():
                raise RuntimeError(f"the writer did not start on {node}:{self.path}: "
                                   f"{channel.recv_stderr(4096).decode(errors='replace').strip()}")
            time.sleep(0.1)
        deadline = time.monotonic() + WARM_TIMEOUT
        warm = time.monotonic() + WARM_SECONDS
        while self.acks.count < WARM_ACKS or time.monotonic() < warm:
            if time.monotonic() > deadline or channel.exit_status_ready():
                raise RuntimeError(f"the writer on {node} acknowledged {self.acks.count} records in "
                                   f"{WARM_TIMEOUT:g} s: {channel.recv_stderr(4096).decode(errors='replace').strip()}")
            time.sleep(0.05)

    def _read(self, stream) -> None:
        try:
            self.acks.consume(stream)
        except Exception:  # the session died with the node: every complete line read so far counts
            pass

    def verify(self, survivor: str) -> dict:
        """Stop listening (the node is gone), read the records on the survivor, compare."""
        if self._reader is not None:
            self._reader.join(timeout=10)
        self.acks.close()
        status, text = self.hosts.run(survivor, f"cat {shlex.quote(self.path)}", timeout=120)
        if status != 0:
            return {"ok": False, "file": self.path, "acked": self.acks.count, "present": 0,
                    "missing": sorted(set(self.acks.acked)), "error": text.strip()[:300]}
        verdict = writer.verify(text, self.acks.acked)
        return {"ok": verdict.ok, "file": self.path, "ackLog": self.acks.path, "acked": verdict.acked,
                "present": verdict.records, "highest": verdict.highest, "highestAcked": self.acks.highest,
                "missing": verdict.acked_missing, "tornTail": verdict.torn_tail, "corrupt": verdict.corrupt,
                "gaps": verdict.gaps}

    @staticmethod
    def summary(data: dict) -> str:
        if data.get("error"):
            return f"cannot read {data['file']}: {data['error']}"
        missing = data.get("missing") or []
        corrupt = data.get("corrupt") or []
        return (f"{len(missing)} acknowledged record(s) missing (first {missing[:5]}), "
                f"{len(corrupt)} corrupt line(s) before the end; {data.get('present')} present of "
                f"{data.get('acked')} acknowledged")
