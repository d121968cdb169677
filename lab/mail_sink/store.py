"""Where the sink keeps what it received: one raw file per message and one JSON line per message.

    <state>/mail/0001.eml, 0002.eml ...   the message exactly as the client sent it after DATA (0600)
    <state>/mail/index.jsonl              one JSON object per message, in arrival order (0600)

Numbers continue from the highest file present, so a restarted sink never overwrites a message; `clear`
empties both. Standard library only: `down`, `list` and the tests read the store with any python3.
"""
import contextlib
import email
import email.policy
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from lab.netlab.state import LockTimeout, exclusive

INDEX = "index.jsonl"
SUFFIX = ".eml"
BODY_LINES = 5          # how much of the body the index keeps (enough for an alert's text)
CREATE_TRIES = 100      # numbers tried when another writer took the next one first
LOCK_WAIT = 10.0        # seconds a writer waits for another one


def utc_now() -> str:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2025-11-25T09:30:00.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header(message, name: str) -> Optional[str]:
    try:
        value = message.get(name)
    except Exception:   # a header the parser cannot decode: keep the message, lose only this field
        return None
    return None if value is None else " ".join(str(value).split())


def _body_start(message, content: bytes) -> List[str]:
    try:
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
    except Exception:
        head, sep, rest = content.partition(b"\r\n\r\n")
        if not sep:
            head, sep, rest = content.partition(b"\n\n")
        text = rest.decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    return lines[:BODY_LINES]


def summarize(content: bytes) -> dict:
    """The index fields read from the message itself; a field the message lacks or garbles is None."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    return {"subject": _header(message, "Subject"), "date": _header(message, "Date"),
            "from": _header(message, "From"), "to": _header(message, "To"),
            "messageId": _header(message, "Message-ID"), "bodyStart": _body_start(message, content)}


class Store:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.index = self.dir / INDEX
        self.lock_file = self.dir / ".store.lock"

    def make(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (the sink, a `clear` from the CLI); each holds it for a file write or two."""
        self.make()
        try:
            with exclusive(self.lock_file, LOCK_WAIT, poll=0.05):
                yield
        except LockTimeout as error:
            raise OSError(str(error)) from None

    def numbers(self) -> List[int]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-len(SUFFIX)]) for n in names if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit())

    def add(self, content: bytes, peer: Optional[str], mail_from: Optional[str], rcpt_tos: Sequence[str],
            helo: Optional[str] = None) -> dict:
        """Keep one message: its raw file first, then its index line; returns the index entry."""
        received = utc_now()
        with self._locked():
            number = (self.numbers() or [0])[-1] + 1
            for _ in range(CREATE_TRIES):
                path = self.dir / f"{number:04d}{SUFFIX}"
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    break
                except FileExistsError:
                    number += 1
            else:
                raise OSError(f"{self.dir}: no free message number after {CREATE_TRIES} tries")
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            entry = {"id": number, "file": path.name, "received": received, "peer": peer, "heloName": helo,
                     "mailFrom": mail_from, "rcptTos": list(rcpt_tos), "size": len(content)}
            try:
                entry.update(summarize(content))
            except Exception as error:   # never lose a message to a parser bug: keep it with what we know
                entry.update({"subject": None, "date": None, "parseError": str(error)})
            line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
            fd = os.open(self.index, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return entry

    def entries(self) -> List[dict]:
        """Every index line, oldest first; a line cut short (a sink killed while writing) is skipped."""
        try:
            text = self.index.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def raw(self, entry: dict) -> bytes:
        return (self.dir / entry["file"]).read_bytes()

    def clear(self) -> int:
        """Delete every message and the index; returns how many messages there were."""
        with self._locked():
            numbers = self.numbers()
            for number in numbers:
                (self.dir / f"{number:04d}{SUFFIX}").unlink(missing_ok=True)
            self.index.unlink(missing_ok=True)
        return len(numbers)
