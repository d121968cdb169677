"""The SMTP side of the sink (aiosmtpd): accept every message from anyone, keep it in the store, relay nothing.

Only this module imports aiosmtpd, so `python3 -m lab.mail_sink down|status|list` works with a system
Python that lacks it.
"""
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from aiosmtpd.smtp import SMTP

from lab.mail_sink.store import Store

HOSTNAME = "lab-mail-sink"


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} mail-sink: {message}\n")
    sys.stdout.flush()


def _peer(peer) -> Optional[str]:
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None if peer is None else str(peer)


class SinkHandler:
    """aiosmtpd handler: every envelope is accepted (the default for MAIL and RCPT) and stored at DATA."""

    def __init__(self, store: Store):
        self.store = store

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.original_content
        if content is None:
            content = envelope.content if isinstance(envelope.content, bytes) else \
                (envelope.content or "").encode("utf-8", errors="surrogateescape")
        try:
            entry = self.store.add(content, _peer(session.peer), envelope.mail_from, envelope.rcpt_tos,
                                   helo=session.host_name)
        except OSError as error:
            log(f"could not store a message from {envelope.mail_from}: {error}")
            return f"451 4.3.0 the lab mail sink could not store the message: {error}"
        log(f"stored {entry['file']}: {entry['mailFrom']} -> {', '.join(entry['rcptTos'])}: {entry.get('subject')!r}")
        return f"250 2.0.0 stored as {entry['file']}"


async def _serve(host: str, port: int, store: Store, ready_file: Optional[Path]) -> None:
    loop = asyncio.get_running_loop()
    handler = SinkHandler(store)

    def protocol() -> SMTP:
        return SMTP(handler, hostname=HOSTNAME, data_size_limit=None, enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(protocol, host=host, port=port, reuse_address=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    bound = server.sockets[0].getsockname()
    log(f"listening on smtp://{bound[0]}:{bound[1]}, storing in {store.dir}")
    if ready_file is not None:
        ready_file.write_text(f"{bound[0]}:{bound[1]}\n")
    await stopping.wait()
    log("stopping")
    server.close()
    await server.wait_closed()


def serve(host: str, port: int, directory: Path, ready_file: Optional[Path] = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store = Store(directory)
    store.make()
    asyncio.run(_serve(host, port, store, ready_file))
    return 0
