"""Proof that a failover loses no acknowledged write: numbered, fsync'ed records on the DRBD primary, their
acknowledgements logged on this machine, and the survivor's copy checked against that log.

The writer (GUEST_SCRIPT) runs on the primary with the server's own Python, fed on stdin:

    ssh HOST python3 - PATH INTERVAL_MS [COUNT] < writer-script

`python3 -` compiles its whole input before running it, so the caller must close stdin after the script:
stdin carries no stop request. The writer stops on SIGTERM, SIGHUP or SIGINT, when COUNT records are
written, or when its stdout is gone (the SSH session ended: the next `ack` fails with EPIPE). Its stdout is
`start <pid> <path>`, then `ack <n>` per record once the record is on disk, then `stop <reason> <last n>`.

Each record is one 128-byte line: `rec <n> <epoch-ms> <sha256('rec <n>')[:16]> <dots>\\n`. Every record is
fsync'ed before the next is written, so a crash can only damage the record in flight, at the end of the file
(cut, or NUL bytes where the size grew before the data landed); 128 divides the sector size, so that record
never straddles two sectors. The writer refuses a PATH whose directory is not a mount point (the records must
be on the replicated filesystem, not on the root disk under an unmounted /data) and a non-empty PATH (records
numbered from 1 again would let an earlier run's stand in for this one's): give each run a new file.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import IO, Iterable, List, Optional, Tuple, Union

RECORD_SIZE = 128

GUEST_SCRIPT = r'''
import hashlib, os, select, signal, sys, time

USAGE = "usage: python3 - PATH INTERVAL_MS [COUNT]  (the writer script on stdin)"
RECORD_SIZE = 128


def say(message):
    try:
        sys.stderr.write("writer: " + message + "\n")
        sys.stderr.flush()
    except OSError:                      # stderr went with the SSH session
        pass


def fail(message):
    say(message)
    sys.exit(2)


class StdoutGone(Exception):
    """The SSH session ended: EPIPE on a pipe, EIO on a hung-up terminal."""


def tell(line):
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except OSError:
        raise StdoutGone()


def number(name, text, high):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= high:
        fail("%s %r: expected a whole number in 0..%d" % (name, text, high))
    return value


def record(n):
    head = "rec %d %d %s " % (n, int(time.time() * 1000), hashlib.sha256(b"rec %d" % n).hexdigest()[:16])
    return (head + "." * (RECORD_SIZE - 1 - len(head)) + "\n").encode()


def main(argv):
    if len(argv) not in (2, 3):
        fail(USAGE)
    path = os.path.abspath(argv[0])
    interval = number("INTERVAL_MS", argv[1], 60000) / 1000.0
    count = number("COUNT", argv[2], 10 ** 9) if len(argv) == 3 else 0
    folder = os.path.dirname(path)
    if not os.path.ismount(folder):
        fail("PATH %s: its directory %s is not a mount point; the records must land on the replicated "
             "filesystem, not on the disk under an unmounted mount point" % (path, folder))
    stop = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stop.append(signal.Signals(signum).name))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        fail("PATH %s: cannot open: %s" % (path, err.strerror))
    size = os.fstat(fd).st_size
    if size:
        fail("PATH %s: holds %d bytes from an earlier run; numbering from 1 again would let its records "
             "stand in for this run's: give a new file" % (path, size))
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dir_fd)                     # the new file's name is durable before the first record is acked
    os.close(dir_fd)
    n, code = 0, 0
    try:
        tell("start %d %s\n" % (os.getpid(), path))
        while not stop and (count == 0 or n < count):
            data = memoryview(record(n + 1))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
            n += 1
            tell("ack %d\n" % n)
            if interval and not stop and (count == 0 or n < count):
                select.select([wake_r], [], [], interval)
        reason = stop[0] if stop else "count"
        tell("stop %s %d\n" % (reason, n))
    except StdoutGone:
        reason = "stdout-closed"
        # the exit's own flush would fail again on the unsent line: let it go to /dev/null instead
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as err:               # the disk went away under us: the record in flight is not acked
        reason, code = "io-error", 1
        say("PATH %s: record %d: %s" % (path, n + 1, err.strerror))
    try:
        os.close(fd)
    except OSError:
        pass
    say("stopped (%s) after record %d" % (reason, n))
    return code


sys.exit(main(sys.argv[1:]))
'''.lstrip()


def guest_command(path: str, interval_ms: int, count: Optional[int] = None) -> str:
    """The remote command for `ssh HOST <command>`, with GUEST_SCRIPT on its stdin."""
    if not 0 <= int(interval_ms) <= 60000:
        raise ValueError(f"interval_ms: {interval_ms!r}, expected 0..60000")
    words = ["python3", "-", path, str(int(interval_ms))]
    if count is not None:
        if int(count) < 0:
            raise ValueError(f"count: {count!r}, expected >= 0 (0 = until stopped)")
        words.append(str(int(count)))
    return " ".join(shlex.quote(w) for w in words)


# ---------------------------------------------------------------- host side: the acknowledgements

class AckLog:
    """Reads the writer's stdout, appends `ack <n> <host-epoch-ms>` per acknowledgement to a 0600 log file
    (flushed per line, so the log survives this process too), and keeps what the proof needs.

    Only complete lines count: a stream cut inside `ack 12` must not be read as `ack 1`."""

    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", encoding="ascii")
        self.acked: List[int] = []
        self.highest = 0
        self.pid: Optional[int] = None
        self.stop_reason: Optional[str] = None
        self.out_of_order: List[int] = []
        self.ignored: List[str] = []          # lines that are not the writer's (kept, at most 20)
        self.partial: Optional[str] = None    # an unterminated last line, not counted

    @property
    def count(self) -> int:
        return len(self.acked)

    def __enter__(self) -> "AckLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def feed(self, line: Union[bytes, str]) -> Optional[int]:
        """One line of the writer's stdout; returns n for an acknowledgement."""
        if isinstance(line, bytes):
            line = line.decode("ascii", "replace")
        if not line.endswith("\n"):
            self.partial = line
            return None
        words = line.split()
        stamp = int(time.time() * 1000)
        if len(words) == 2 and words[0] == "ack" and words[1].isdigit():
            n = int(words[1])
            if n <= self.highest:
                self.out_of_order.append(n)
            self.highest = max(self.highest, n)
            self.acked.append(n)
            self._file.write(f"ack {n} {stamp}\n")
            self._file.flush()
            return n
        if len(words) >= 3 and words[0] == "start" and words[1].isdigit():
            self.pid = int(words[1])
        elif len(words) == 3 and words[0] == "stop":
            self.stop_reason = words[1]
        else:
            if len(self.ignored) < 20:
                self.ignored.append(line.rstrip("\n"))
            return None
        self._file.write(f"# {line.rstrip()} {stamp}\n")
        self._file.flush()
        return None

    def consume(self, stream: Union[IO, Iterable[Union[bytes, str]]]) -> "AckLog":
        """Every line of `stream` until its end (a pipe's end: the writer or the SSH session is gone)."""
        for line in stream:
            self.feed(line)
        return self

    @staticmethod
    def read(path: str) -> List[int]:
        """The acknowledged numbers of a log this class wrote (for a check after the fact)."""
        acked = []
        with open(path, encoding="ascii", errors="replace") as log:
            for line in log:
                words = line.split()
                if len(words) == 3 and words[0] == "ack" and words[1].isdigit():
                    acked.append(int(words[1]))
        return acked


# ---------------------------------------------------------------- after the crash: the survivor's file

_RECORD = re.compile(r"rec ([1-9][0-9]*) ([0-9]+) ([0-9a-f]{16}) (\.*)")


def parse_record(line: str) -> Tuple[Optional[int], str]:
    """One line without its newline -> (n, "") when it is a whole, intact record, else (None, why)."""
    match = _RECORD.fullmatch(line)
    if not match:
        return None, "not a record"
    if len(line) != RECORD_SIZE - 1:
        return None, f"{len(line) + 1} bytes, expected {RECORD_SIZE}"
    n = int(match.group(1))
    if hashlib.sha256(b"rec %d" % n).hexdigest()[:16] != match.group(3):
        return None, "digest does not match the number"
    return n, ""


@dataclass
class Verdict:
    records: int = 0                          # intact records present
    highest: int = 0                          # the highest intact record number (0: none)
    acked: int = 0                            # acknowledgements the writer gave
    acked_missing: List[int] = field(default_factory=list)   # the proof: must stay empty
    torn_tail: bool = False                   # the last line is a cut record (the write in flight)
    corrupt: List[List] = field(default_factory=list)        # [line number, why] before the last line
    gaps: List[List[int]] = field(default_factory=list)      # [first, last] numbers absent below highest
    duplicates: List[int] = field(default_factory=list)      # numbers present more than once

    @property
    def ok(self) -> bool:
        return not self.acked_missing and not self.corrupt

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def verify(file_text: str, acked: Iterable[int]) -> Verdict:
    """Check the survivor's records file against the acknowledgements logged on this machine.

    Only the last line may be damaged without blame: a crash can cut (or leave as NUL bytes) the record being
    written, which was never acknowledged. If it was, `acked_missing` says so. A bad line anywhere else is
    corruption."""
    lines = file_text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()                           # the text ended with a newline: no unterminated tail
    verdict = Verdict()
    seen = set()
    duplicates = set()
    for index, line in enumerate(lines):
        n, why = parse_record(line)
        if n is None:
            if index == len(lines) - 1:
                verdict.torn_tail = True
            else:
                verdict.corrupt.append([index + 1, why])
            continue
        if n in seen:
            duplicates.add(n)
        seen.add(n)
        verdict.records += 1
    verdict.highest = max(seen, default=0)
    acked = list(acked)
    verdict.acked = len(acked)
    verdict.acked_missing = sorted(set(n for n in acked if n not in seen))
    verdict.duplicates = sorted(duplicates)
    previous = 0
    for n in sorted(seen):
        if n > previous + 1:
            verdict.gaps.append([previous + 1, n - 1])
        previous = n
    return verdict


def main(argv=None) -> int:
    """python3 -m drill.writer RECORDS_FILE ACK_LOG: the verdict as JSON, exit 0 when ok, 1 when not."""
    parser = argparse.ArgumentParser(prog="python3 -m drill.writer", description="Check a records file "
                                     "copied from the survivor against an acknowledgement log.")
    parser.add_argument("records", help="the records file, copied from the survivor's DRBD filesystem")
    parser.add_argument("acklog", help="the acknowledgement log AckLog wrote on this machine")
    args = parser.parse_args(argv)
    with open(args.records, "rb") as f:
        text = f.read().decode("ascii", "replace")      # bytes as they are: no newline translation
    verdict = verify(text, AckLog.read(args.acklog))
    print(json.dumps(verdict.as_dict(), sort_keys=True))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
