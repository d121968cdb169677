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
