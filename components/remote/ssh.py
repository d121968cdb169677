"""SSH sessions of the remote layer: one connection per host per engine operation, host keys always checked.

The dynamic providers run in one Python process per engine operation (preview, up, refresh, destroy) that
serves every resource; the pool below lives in that process, so each host costs one handshake per
operation however many resources touch it. Commands get secrets only on stdin or through SFTP, never in
argv. OVH_HA_SSH_TRACE names a file where each handshake is appended as one line (benchmarks, tests);
OVH_HA_SSH_HOLD=<seconds> waits that long after each handshake, so a fault drill can cut a live session.
"""
import base64
import hashlib
import io
import os
import posixpath
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

CONNECT_TIMEOUT = 10.0       # TCP connect, banner and authentication, each
COMMAND_TIMEOUT = 300.0      # one remote command, output included
CHANNELS = 4                 # commands at once on one connection (sshd's MaxSessions is 10 by default)
CHANNEL_RETRIES = 5


class RemoteError(Exception):
    """A failure on or on the way to a server; the message names the server."""


class HostKeyMismatch(RemoteError):
    pass


@dataclass(frozen=True)
class Target:
    """Where and how to log in. `host_key` is "type base64"; None only when capturing it (first use)."""

    node: str
    host: str
    port: int = 22
    user: str = "root"
    host_key: Optional[str] = None
    key_file: Optional[str] = None

    @classmethod
    def from_props(cls, conn: dict, host_key: Optional[str] = None) -> "Target":
        return cls(node=conn["node"], host=conn["host"], port=int(conn.get("port") or 22),
                   user=conn.get("user") or "root", host_key=host_key or conn.get("hostKey") or None,
                   key_file=conn.get("keyFile") or None)

    @property
    def label(self) -> str:
        return f"{self.node} ({self.user}@{self.host}:{self.port})"


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self):
        return self.stdout.splitlines()


def key_fingerprint(host_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of "type base64", as `ssh-keygen -lf` prints it."""
    blob = base64.b64decode(host_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _load_private_key(text: Optional[str], path: Optional[str]):
    import paramiko

    if text is None and path is None:
        raise RemoteError("no SSH private key: set ovh-ha-cluster:sshKeyFile or the secret sshPrivateKey")
    if text is None:
        try:
            with open(os.path.expanduser(path)) as fh:
                text = fh.read()
        except OSError as error:
            raise RemoteError(f"cannot read the SSH key file {path}: {error.strerror}") from None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise RemoteError("the SSH private key could not be loaded (unencrypted ed25519, ecdsa or rsa expected)")


def _trace(target: Target, what: str) -> None:
    path = os.environ.get("OVH_HA_SSH_TRACE")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.time():.3f} {os.getpid()} {target.node} {target.host}:{target.port} {what}\n")


class Session:
    """One authenticated SSH transport to one server; safe to share between threads."""

    def __init__(self, target: Target, private_key: Optional[str]):
        import paramiko

        self.target = target
        self.presented_key: Optional[str] = None
        self._slots = threading.BoundedSemaphore(CHANNELS)
        client = paramiko.SSHClient()
        expected = target.host_key
        session = self

        class _Check(paramiko.MissingHostKeyPolicy):
            # Decides on the key the server presents, against the one recorded in state or declared.
            def missing_host_key(self, _client, _hostname, key):
                presented = f"{key.get_name()} {key.get_base64()}"
                session.presented_key = presented
                if expected is None:
                    return   # first use: the caller records it
                if presented.split()[:2] != expected.split()[:2]:
                    raise HostKeyMismatch(
                        f"{target.label}: host key mismatch: expected {key_fingerprint(expected)}, the server "
                        f"presented {key_fingerprint(presented)}. If the server was reinstalled, declare the new "
                        f"key in ssh.hostKey (or remove the recorded one with `pulumi state` commands) after "
                        f"checking it out of band; nothing was changed on the server.")

        client.set_missing_host_key_policy(_Check())
        pkey = _load_private_key(private_key, target.key_file)
        try:
            client.connect(target.host, port=target.port, username=target.user, pkey=pkey,
                           timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
                           allow_agent=False, look_for_keys=False)
        except HostKeyMismatch:
            client.close()
            raise
        except paramiko.AuthenticationException as error:
            client.close()
            raise RemoteError(f"{target.label}: SSH authentication refused ({error})") from None
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as error:
            client.close()
            raise RemoteError(f"{target.label}: cannot connect over SSH within {CONNECT_TIMEOUT:.0f} s: "
                              f"{error or type(error).__name__}") from None
        _trace(target, "handshake")
        hold = os.environ.get("OVH_HA_SSH_HOLD")
        if hold:
            time.sleep(min(float(hold), 60.0))
        transport = client.get_transport()
        transport.set_keepalive(15)
        self.client = client

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def _open(self):
        """A session channel; sshd refuses new ones while too many are open or closing (MaxSessions), which
        is harmless to retry since nothing ran yet."""
        import paramiko

        for attempt in range(CHANNEL_RETRIES):
            try:
                return self.client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            except paramiko.ChannelException:
                if attempt == CHANNEL_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def run(self, command: str, stdin: Optional[bytes] = None, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a shell command; stdin (bytes) is how secrets reach it."""
        import paramiko

        with self._slots:
            try:
                channel = self._open()
                channel.settimeout(timeout)
                if stdin is None:
                    # No EOF to send: a fast command's channel may already be closed by then, and an EOF on
                    # a freed channel makes sshd drop the whole connection. The command reads /dev/null.
                    channel.exec_command(f"exec </dev/null; {command}")
                else:
                    channel.exec_command(command)
                    channel.sendall(stdin)
                    channel.shutdown_write()
                out = channel.makefile("rb").read()        # outputs are small: far below the SSH window
                err = channel.makefile_stderr("rb").read()
                status = channel.recv_exit_status()
                channel.close()
            except socket.timeout:
                raise RemoteError(f"{self.target.label}: a command took more than {timeout:.0f} s") from None
            except (OSError, paramiko.SSHException, EOFError, AttributeError) as error:
                raise RemoteError(f"{self.target.label}: the SSH connection failed: "
                                  f"{error or type(error).__name__}") from None
        if status == -1:
            if not self.alive:
                raise RemoteError(f"{self.target.label}: the SSH connection was cut while running a command")
            raise RemoteError(f"{self.target.label}: a command ended without an exit status (killed by a signal?)")
        return Result(status, out.decode(errors="replace"), err.decode(errors="replace"))

    def check(self, command: str, stdin: Optional[bytes] = None, what: str = "") -> Result:
        result = self.run(command, stdin=stdin)
        if result.status != 0:
            detail = (result.stderr.strip() or result.stdout.strip())[-800:]
            raise RemoteError(f"{self.target.label}: {what or command.split()[0]} failed "
                              f"(exit {result.status}): {detail}")
        return result

    def put(self, path: str, data: bytes, mode: int, owner: str = "root", group: str = "root") -> None:
        """Write a file atomically: a 0600 temporary beside it, then owner, mode and rename."""
        import paramiko

        directory = posixpath.dirname(path)
        tmp = posixpath.join(directory, f".{posixpath.basename(path)}.ovh-ha.{os.getpid()}.{threading.get_ident()}")
        self.check(f"mkdir -p -- {shlex.quote(directory)}", what=f"creating {directory}")
        try:
            with self._slots:
                sftp = self.client.open_sftp()
                try:
                    with sftp.open(tmp, "wb") as fh:
                        sftp.chmod(tmp, 0o600)
                        fh.write(data)
                finally:
                    sftp.close()
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise RemoteError(f"{self.target.label}: writing {path} over SFTP failed: {error}") from None
        self.check(f"chown {shlex.quote(owner)}:{shlex.quote(group)} {shlex.quote(tmp)} && "
                   f"chmod {mode:04o} {shlex.quote(tmp)} && mv -f -- {shlex.quote(tmp)} {shlex.quote(path)}"
                   f" || {{ rc=$?; rm -f -- {shlex.quote(tmp)}; exit $rc; }}", what=f"installing {path}")

    def close(self) -> None:
        self.client.close()


_pool: Dict[Tuple[str, int, str], Session] = {}
_locks: Dict[Tuple[str, int, str], threading.Lock] = {}
_pool_lock = threading.Lock()


def session(target: Target, private_key: Optional[str] = None) -> Session:
    """The shared session to this host, opened on first use, reopened if it died."""
    key = (target.host, target.port, target.user)
    with _pool_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        current = _pool.get(key)
        if current is not None and current.alive:
            if target.host_key and current.presented_key and \
                    current.presented_key.split()[:2] != target.host_key.split()[:2]:
                raise HostKeyMismatch(f"{target.label}: host key mismatch: expected "
                                      f"{key_fingerprint(target.host_key)}, the server presented "
                                      f"{key_fingerprint(current.presented_key)}")
            return current
        if current is not None:
            current.close()
        fresh = Session(target, private_key)
        _pool[key] = fresh
        return fresh

