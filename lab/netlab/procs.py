"""Processes the lab started, known by PID plus kernel start time so a reused PID is never mistaken for ours."""
import os
import signal
import time
from typing import Optional


def _stat_fields(pid: int) -> Optional[list]:
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return [raw[:raw.index(" ")], "comm"] + raw[raw.rindex(")") + 2:].split()


def start_time(pid: int) -> Optional[int]:
    """Field 22 of /proc/PID/stat: clock ticks after boot, the same in every PID namespace."""
    fields = _stat_fields(pid)
    return int(fields[21]) if fields else None


def parent(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def state(pid: int) -> Optional[str]:
    fields = _stat_fields(pid)
    return fields[2] if fields else None


def identity(pid: int) -> Optional[dict]:
    start = start_time(pid)
    return None if start is None else {"pid": pid, "start": start}


def alive(entry: Optional[dict]) -> bool:
    """True when the recorded process still runs (not a zombie) and is the very one we recorded."""
    if not entry:
        return False
    pid = entry["pid"]
    return start_time(pid) == entry["start"] and state(pid) not in ("Z", "X", None)


def exists(entry: Optional[dict]) -> bool:
    """Like alive, but a zombie still counts: its PID is not free yet."""
    return bool(entry) and start_time(entry["pid"]) == entry["start"]


def stop(entry: Optional[dict], grace: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL after grace seconds, the recorded process only. True if it was running."""
    if not alive(entry):
        return False
    pid = entry["pid"]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        if not alive(entry):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while alive(entry) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    if alive(entry):
        raise RuntimeError(f"process {pid} survived SIGKILL")
    return True


def service_running(record: Optional[dict], marker: str) -> bool:
    """A lab service's record ({"pid", "startTime"}) names a live process that is still the one `up` started
    (same start time) and still runs that service (`marker`, its module name, in its command line)."""
    entry = {"pid": int((record or {}).get("pid") or 0), "start": (record or {}).get("startTime")}
    if entry["pid"] <= 0 or not alive(entry):
        return False
    try:
        argv = open(f"/proc/{entry['pid']}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return False
    return marker.encode() in argv


def start_service(argv: list, cwd, env: dict, log_path, ready, label: str, tries: int = 100,
                  pause: float = 0.1) -> dict:
    """Start a lab service in its own session, its output appended to log_path (0600), and wait until
    `ready()` (at most tries x pause seconds). Returns {"pid", "startTime"}; RuntimeError if it exits or
    never gets ready (then it is stopped)."""
    import subprocess
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
    started = start_time(child.pid)
    for _ in range(tries):
        if child.poll() is not None:
            tail = open(log_path, errors="replace").read().splitlines()[-5:]
            raise RuntimeError(f"the {label} exited with status {child.returncode}: " + " | ".join(tail))
        if ready():
            return {"pid": child.pid, "startTime": started}
        time.sleep(pause)
    stop({"pid": child.pid, "start": started})
    raise RuntimeError(f"the {label} was not ready within {tries * pause:.0f} s; see {log_path}")


def stop_service(record_path, marker: str, label: str) -> str:
    """`down` of a lab service: stop the recorded process only if it is still ours, then forget the record."""
    import json
    try:
        record = json.loads(open(record_path).read())
    except (OSError, ValueError):
        return f"{label}: not running (no record)"
    pid = int(record.get("pid") or 0)
    if service_running(record, marker):
        stop({"pid": pid, "start": record["startTime"]}, grace=5.0)
        message = f"{label}: stopped (pid {pid})"
    else:
        message = f"{label}: pid {pid} is gone or is another process now; record removed, nothing killed"
    try:
        os.unlink(record_path)
    except FileNotFoundError:
        pass
    return message


def _reap(pid: int) -> None:
    """Collect it if it happens to be our own child (a process started in this same run)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def namespace_inode(pid_or_path, kind: str = "net") -> Optional[int]:
    """Inode of a namespace, from a PID (its /proc/PID/ns/KIND) or from a path such as /run/netns/NAME."""
    path = f"/proc/{pid_or_path}/ns/{kind}" if isinstance(pid_or_path, int) else str(pid_or_path)
    try:
        return os.stat(path).st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pids_in_namespaces(inodes: dict) -> list:
    """PIDs of live processes in any of the given namespaces ({kind: set of inodes})."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if state(pid) in ("Z", "X", None):
            continue
        for kind, wanted in inodes.items():
            if namespace_inode(pid, kind) in wanted:
                found.append(pid)
                break
    return found
