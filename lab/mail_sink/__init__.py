"""The lab's mail sink: an SMTP server on the machine's 127.0.0.1:2525 that keeps every message it gets and
relays none. The lab hosts' msmtp (/etc/msmtprc, written by `lab/lab.py up`) delivers there, so Heartbeat's
MailTo alerts from ns11111/ns22222 land in <state>/mail/ where tests and drills read them:

    from lab.mail_sink import messages, wait_for
    wait_for(lambda m: "Takeover" in (m["subject"] or ""), timeout=15)

`python -m lab.mail_sink up|down|status|list|clear` runs it (service.py). This package imports aiosmtpd only
in the serving process (server.py).
"""
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Union

from lab.mail_sink.store import Store

PathLike = Union[str, Path]


def mail_dir(state_dir: Optional[PathLike] = None) -> Path:
    """<state>/mail, with the state dir resolved as lab/netlab does ($LAB_STATE, default <repo>/.lab)."""
    if state_dir is None:
        from lab.netlab.state import state_dir as default_state
        return default_state() / "mail"
    return Path(state_dir) / "mail"


def messages(state_dir: Optional[PathLike] = None) -> List[dict]:
    """Every index entry (index.jsonl), oldest first: id, file, received, peer, heloName, mailFrom, rcptTos,
    subject, date, from, to, messageId, size, bodyStart."""
    return Store(mail_dir(state_dir)).entries()


def raw_message(entry: dict, state_dir: Optional[PathLike] = None) -> bytes:
    """The message as received (the entry's .eml file)."""
    return Store(mail_dir(state_dir)).raw(entry)


def wait_for(match: Callable[[dict], bool], timeout: float = 15.0, state_dir: Optional[PathLike] = None,
             ignore: Iterable[int] = (), poll: float = 0.1) -> dict:
    """The first message match() accepts, waiting up to timeout seconds for it; entries whose id is in ignore
    (e.g. those present before the action) are skipped. TimeoutError names what did arrive."""
    skipped = set(ignore)
    deadline = time.monotonic() + timeout
    while True:
        seen = [m for m in messages(state_dir) if m.get("id") not in skipped]
        for entry in seen:
            if match(entry):
                return entry
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no matching message in {mail_dir(state_dir)} within {timeout:.0f} s; new ones: "
                               + (", ".join(repr(m.get("subject")) for m in seen) or "none"))
        time.sleep(poll)


__all__ = ["mail_dir", "messages", "raw_message", "wait_for"]
