"""Where the lab keeps its files, and the record of what it started.

The state dir (env LAB_STATE, default <repo>/.lab, git-ignored) is shared with the other lab tools (the OVH
emulator keeps .lab/ovh/); the netns lab only touches the entries named here. The run record
(netns-lab.json) lists every network namespace and process the lab made, each process with its kernel start
time, so `down` and a later `up` act only on what this lab started even after a crash and PID reuse.
"""
import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parents[2]

# Paths the hosts get a private view of; the state dir must not live under them (overlay and bind mounts
# of the per-host copies would overlap the state dir itself).
PRIVATE_PATHS = ("/etc", "/var", "/run", "/tmp", "/root")


def state_dir(environ=os.environ) -> Path:
    raw = environ.get("LAB_STATE")
    path = Path(raw) if raw else REPO / ".lab"
    if not path.is_absolute():
        path = (Path.cwd() / path)
    path = Path(os.path.normpath(path))
    for private in PRIVATE_PATHS:
        if path == Path(private) or Path(private) in path.parents:
            raise ValueError(f"LAB_STATE: {str(path)!r} lies under {private}, which every lab host replaces "
                             f"with its own copy; expected a directory outside {', '.join(PRIVATE_PATHS)} "
                             "(default: <repo>/.lab)")
    return path


class Layout:
    """Names of everything the netns lab keeps under the state dir."""

    def __init__(self, root: Path):
        self.root = root
        self.record = root / "netns-lab.json"
        self.lock = root / "netns-lab.lock"
        self.hosts_json = root / "hosts.json"
        self.ssh = root / "ssh"
        self.client_key = self.ssh / "id_ed25519"
        self.known_hosts = self.ssh / "known_hosts"
        self.ssh_config = self.ssh / "config"
        self.hosts = root / "hosts"
        self.forwarder_log = root / "hosts" / "forwarder.log"

    def host_dir(self, name: str) -> Path:
        return self.hosts / name

    def owned(self):
        """Every entry `down --purge` may delete: nothing else under the state dir is the netns lab's."""
        return [self.record, self.lock, self.hosts_json, self.ssh, self.hosts]


def write_private(path: Path, text: str, mode: int = 0o600) -> bool:
    """Atomically write text with mode; returns False (and writes nothing) when the content is unchanged."""
    try:
        if path.read_text() == text and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True


class Record:
    """The run record: {"netns": [names], "processes": {role: {"pid", "start", ...}}}."""

    def __init__(self, layout: Layout):
        self.path = layout.record
        self.data = {"netns": [], "processes": {}}
        if self.path.exists():
            loaded = json.loads(self.path.read_text())
            self.data["netns"] = list(loaded.get("netns", []))
            self.data["processes"] = dict(loaded.get("processes", {}))

    @property
    def netns(self):
        return self.data["netns"]

    def add_netns(self, name: str) -> None:
        """Called BEFORE creating the namespace, so a crash in between still leaves it ours."""
        if name not in self.data["netns"]:
            self.data["netns"].append(name)
            self.save()

    def drop_netns(self, name: str) -> None:
        if name in self.data["netns"]:
            self.data["netns"].remove(name)
            self.save()

    def process(self, role: str) -> Optional[dict]:
        return self.data["processes"].get(role)

    def set_process(self, role: str, entry: dict) -> None:
        self.data["processes"][role] = entry
        self.save()

    def drop_process(self, role: str) -> None:
        if self.data["processes"].pop(role, None) is not None:
            self.save()

    def empty(self) -> bool:
        return not self.data["netns"] and not self.data["processes"]

    def save(self) -> None:
        if self.empty():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        write_private(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


class LockTimeout(Exception):
    """Another process kept a lock longer than we wait."""


@contextlib.contextmanager
def exclusive(path: Path, wait: float, poll: float = 0.2) -> Iterator[None]:
    """An flock on `path` (created 0600), waited for at most `wait` seconds; LockTimeout after that."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} held by another process for more than {wait:.0f} s")
                time.sleep(poll)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One up/down at a time per state dir; waits at most 60 s for another one to finish."""
    layout.root.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive(layout.lock, 60):
            yield
    except LockTimeout:
        raise RuntimeError(f"another lab up/down holds {layout.lock} for more than 60 s") from None
