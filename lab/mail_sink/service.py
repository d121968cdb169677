"""The sink as the lab's background service: `python -m lab.mail_sink up|down|status|list [--json]|clear`.

up      start the sink in the background on smtp://127.0.0.1:2525 (its own session), wait until it greets,
        record its PID and kernel start time. Idempotent: a running sink on the same port is left alone.
down    stop the process recorded by `up`, and only that one (PID and kernel start time must both match).
status  "running ..." (exit 0) or "stopped" (exit 3).
list    the received messages, one line each (--json: the index entries as a JSON array).
clear   delete the received messages (the sink may keep running).

Files under <state>/mail/ (0700; state: --state-dir, else $LAB_STATE, else <repo>/.lab, as lab/netlab):
  0001.eml ...  index.jsonl    the messages (store.py)
  sink.json                    PID, start time, port of the running sink (0600)
  sink.log                     the sink's output (0600)

Standard library only here; aiosmtpd is imported by the serving process alone.
"""
import argparse
import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from lab.mail_sink.store import Store
from lab.netlab import procs
from lab.netlab import topology as topo
from lab.netlab.state import state_dir, write_private

REPO = Path(__file__).resolve().parents[2]
MARKER = "lab.mail_sink"
HOST = "127.0.0.1"             # loopback only: the hosts reach it through the lab's forwarder
START_TRIES, START_PAUSE = 100, 0.1   # up waits at most ~10 s for the greeting
EXIT_STOPPED = 3


class ServiceError(Exception):
    """A failure of up/down/status, with what to do about it."""


class Layout:
    def __init__(self, state: Path):
        self.state = Path(state)
        self.dir = self.state / "mail"
        self.record = self.dir / "sink.json"
        self.log = self.dir / "sink.log"
        self.ready = self.dir / "sink.ready"
        self.store = Store(self.dir)

    def make(self) -> None:
        self.store.make()


def resolve_state(explicit: Optional[str] = None) -> Path:
    return Path(explicit).resolve() if explicit else state_dir()


def read_record(layout: Layout) -> Optional[dict]:
    try:
        return json.loads(layout.record.read_text())
    except (OSError, ValueError):
        return None


def is_ours(record: dict) -> bool:
    return procs.service_running(record, MARKER)


def greets(port: int, timeout: float = 2.0) -> Optional[str]:
    """The SMTP greeting (220 ...) of whatever listens on 127.0.0.1:port, None when nothing greets."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            banner = conn.recv(512).decode("ascii", errors="replace").strip()
            if banner.startswith("220"):
                conn.sendall(b"QUIT\r\n")
                return banner
            return None
    except OSError:
        return None


def listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def stop(layout: Layout) -> str:
    return procs.stop_service(layout.record, MARKER, "mail sink")


def up(layout: Layout, port: int = topo.MAIL_SINK_PORT) -> str:
    record = read_record(layout)
    if record is not None and is_ours(record):
        if record.get("port") == port and greets(port):
            return (f"mail sink: already running at smtp://{HOST}:{port} (pid {record['pid']}), nothing changed")
        stop(layout)
    elif record is not None:
        layout.record.unlink(missing_ok=True)
    if importlib.util.find_spec("aiosmtpd") is None:
        raise ServiceError(f"{sys.executable} has no aiosmtpd: run `up` with the project's virtualenv "
                           "(.venv/bin/python -m lab.mail_sink up; `make venv` installs requirements-test.txt)")
    if listening(port):
        raise ServiceError(f"something else already listens on {HOST}:{port} (not the sink `up` started); "
                           "stop it: the lab hosts' mail goes to that port")
    layout.make()
    layout.ready.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        child = procs.start_service(
            [sys.executable, "-m", MARKER, "serve", "--host", HOST, "--port", str(port), "--dir", str(layout.dir),
             "--ready-file", str(layout.ready)], REPO, env, layout.log,
            lambda: layout.ready.exists() and greets(port) is not None, f"mail sink (smtp://{HOST}:{port})",
            START_TRIES, START_PAUSE)
    except RuntimeError as error:
        raise ServiceError(str(error)) from None
    write_private(layout.record, json.dumps({
        "pid": child["pid"], "startTime": child["startTime"], "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": HOST, "port": port, "dir": str(layout.dir), "log": str(layout.log)}, indent=2) + "\n")
    return (f"mail sink: running at smtp://{HOST}:{port} (pid {child['pid']}); messages in {layout.dir} "
            f"({len(layout.store.entries())} so far)")


def status(layout: Layout) -> Tuple[int, str]:
    record = read_record(layout)
    if record is None or not is_ours(record):
        return EXIT_STOPPED, "mail sink: stopped"
    health = "answering" if greets(record["port"]) else "NOT answering"
    return 0, (f"mail sink: running at smtp://{record['host']}:{record['port']} (pid {record['pid']}, since "
               f"{record['started']}), {health}; {len(layout.store.entries())} messages in {layout.dir}")


def listing(layout: Layout, as_json: bool) -> str:
    entries = layout.store.entries()
    if as_json:
        return json.dumps(entries, indent=2, ensure_ascii=False)
    if not entries:
        return f"no messages in {layout.dir}"
    return "\n".join(f"{e.get('file')}  {e.get('received')}  {e.get('mailFrom')} -> {', '.join(e.get('rcptTos') or [])}"
                     f"  {e.get('subject')!r}" for e in entries)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mail_sink", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "list", "clear"))
    parser.add_argument("--json", action="store_true", help="list: the index entries as a JSON array")
    parser.add_argument("--port", type=int, default=topo.MAIL_SINK_PORT,
                        help=f"up: the loopback port (default {topo.MAIL_SINK_PORT}, where the lab hosts' msmtp delivers)")
    parser.add_argument("--state-dir", help="default $LAB_STATE, else <repo>/.lab")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: expected a TCP port 1-65535 (the lab hosts deliver to "
                     f"{topo.MAIL_SINK_PORT})")
    try:
        layout = Layout(resolve_state(args.state_dir))
        if args.command == "up":
            print(up(layout, args.port))
        elif args.command == "down":
            print(stop(layout))
        elif args.command == "status":
            code, text = status(layout)
            print(text)
            return code
        elif args.command == "list":
            print(listing(layout, args.json))
        else:
            print(f"mail sink: removed {layout.store.clear()} messages from {layout.dir}")
        return 0
    except (ServiceError, ValueError) as error:   # ValueError: a LAB_STATE the lab refuses
        print(f"error: {error}", file=sys.stderr)
        return 1
