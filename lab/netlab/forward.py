"""TCP forwarder between network namespaces, one process for all the lab's forwards.

    python3 forward.py --ready-file F --rule LNS,LADDR,LPORT,CNS,CADDR,CPORT [--rule ...]

LNS/CNS is a network namespace file (/run/netns/NAME) or `root`, the namespace the forwarder starts in. Each
listening socket is made inside LNS and each outgoing socket inside CNS: a socket stays in the namespace it
was created in, so one thread can switch namespaces (setns) just for socket creation. The lab uses it for
  - SSH: the machine's 127.0.0.1:<port> -> from OUTSIDE to <host address>:22, so an SSH session reaches the
    host the way an operator on the Internet does (through eth0, through the host's firewall);
  - machine services (the OVH API emulator...): <host> 127.0.0.1:<port> -> the machine's 127.0.0.1:<port>.
Standard library only; stops on SIGTERM. Writes the ready file once every listener is bound.
"""
import argparse
import ctypes
import os
import selectors
import socket
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0
_libc = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} forward: {message}\n")
    sys.stdout.flush()


class Namespaces:
    def __init__(self):
        self.fds = {"root": os.open("/proc/self/ns/net", os.O_RDONLY)}

    def enter(self, name: str) -> None:
        if name not in self.fds:
            self.fds[name] = os.open(name, os.O_RDONLY)
        if _libc.setns(self.fds[name], CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")

    def socket_in(self, name: str) -> socket.socket:
        self.enter(name)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            self.enter("root")


def parse_rule(text: str) -> tuple:
    parts = text.split(",")
    if len(parts) != 6 or not parts[2].isdigit() or not parts[5].isdigit():
        raise argparse.ArgumentTypeError(f"--rule {text!r}: expected LNS,LADDR,LPORT,CNS,CADDR,CPORT")
    return parts[0], parts[1], int(parts[2]), parts[3], parts[4], int(parts[5])


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(client: socket.socket, upstream: socket.socket, target: tuple) -> None:
    try:
        upstream.settimeout(CONNECT_TIMEOUT)
        upstream.connect(target)
        upstream.settimeout(None)
    except OSError as error:
        log(f"connect {target[0]}:{target[1]}: {error}")
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", type=parse_rule, action="append", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)
    spaces = Namespaces()
    selector = selectors.DefaultSelector()
    for lns, laddr, lport, cns, caddr, cport in args.rule:
        listener = spaces.socket_in(lns)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((laddr, lport))
        except OSError as error:
            log(f"cannot listen on {laddr}:{lport} in {lns}: {error}")
            return 1
        listener.listen(64)
        selector.register(listener, selectors.EVENT_READ, (cns, (caddr, cport)))
        log(f"{lns} {laddr}:{lport} -> {cns} {caddr}:{cport}")
    with open(args.ready_file + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(args.ready_file + ".tmp", args.ready_file)
    while True:
        for key, _ in selector.select():
            try:
                client, _peer = key.fileobj.accept()
            except OSError:
                continue
            cns, target = key.data
            upstream = spaces.socket_in(cns)
            threading.Thread(target=relay, args=(client, upstream, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
