"""One guest connection to one of the machine's loopback services, for qemu's `guestfwd=...-cmd:`.

qemu (user-mode networking) starts this once per connection the guest opens to 10.0.2.100:<port>, with the
connection on stdin/stdout; it relays both ways to 127.0.0.1:<port> on the machine. qemu also hands the
connection over as stderr, so nothing may be printed: failures go to the log file named on the command line.
    python3 pipe.py PORT LOGFILE
"""
import os
import socket
import sys
import threading
import time

CONNECT_TIMEOUT = 10.0
CHUNK = 65536


def _log(path: str, message: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pipe[{os.getpid()}]: {message}\n")
    except OSError:
        pass


def _guest_to_service(sock: socket.socket) -> None:
    try:
        while True:
            data = os.read(0, CHUNK)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main(argv) -> int:
    port, log = int(argv[1]), argv[2]
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
    except OSError as error:
        _log(log, f"127.0.0.1:{port}: {error}")
        return 1
    sock.settimeout(None)
    threading.Thread(target=_guest_to_service, args=(sock,), daemon=True).start()
    try:
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
    except OSError as error:
        _log(log, f"127.0.0.1:{port}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
