"""Run the emulator, run it as the lab's service, or write a lab account for it.

  python -m lab.ovh_emulator up [--fresh] [--move-delay S] | down | status
      the lab's OVH API in the background, seeded from the lab stack (see service.py)

  python -m lab.ovh_emulator --port 18080 --state-file .lab/ovh/state.json [--host 127.0.0.1]
                             [--move-delay 60] [--no-persist] [--ready-file F]
      serve until SIGTERM/SIGINT; the first line on stdout is "listening on <url>"; with a state file,
      the account (routing, tasks, SMS jobs) is written back to it on every change unless --no-persist

  python -m lab.ovh_emulator init --state-file .lab/ovh/state.json --credentials-file .lab/ovh/credentials.json
                             --endpoint http://127.0.0.1:18080/1.0 --failover-ip 203.0.113.10/32
                             --service ns11111.ovh.net=192.0.2.11 --service ns22222.ovh.net=192.0.2.22
                             --routed-to ns11111.ovh.net [--sms-service sms-lb00001-1 --sms-sender OVHHA]
                             [--keys-from-env]
      write a seed account and the matching lab credentials file (both 0600). The application key, secret
      and consumer key are generated, or with --keys-from-env taken from OVH_APPLICATION_KEY,
      OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY (so they match a stack's secrets). The consumer key is
      granted every call; least-privilege keys are requested through POST /auth/credential.
"""
import argparse
import shlex
import json
import os
import secrets
import signal
import sys
import threading
from typing import List, Optional

from lab.ovh_emulator.server import Emulator
from lab.ovh_emulator.state import AccountState


def _write_private(path: str, value: object) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.chmod(path, 0o600)


def init(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.ovh_emulator init")
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--credentials-file", required=True)
    parser.add_argument("--endpoint", required=True, help="the URL clients will use, e.g. http://127.0.0.1:18080/1.0")
    parser.add_argument("--failover-ip", action="append", required=True)
    parser.add_argument("--service", action="append", required=True, metavar="NAME=MAIN_IP")
    parser.add_argument("--routed-to", required=True)
    parser.add_argument("--sms-service")
    parser.add_argument("--sms-sender", action="append", default=[])
    parser.add_argument("--move-delay", type=float, default=0.0)
    parser.add_argument("--keys-from-env", action="store_true")
    args = parser.parse_args(argv)

    services = {}
    for item in args.service:
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            parser.error(f"--service {item!r}: expected NAME=MAIN_IP")
        services[name] = {"ip": address}
    if args.routed_to not in services:
        parser.error(f"--routed-to {args.routed_to!r} is none of the --service names ({', '.join(services)})")
    if args.keys_from_env:
        missing = [k for k in ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY")
                   if not os.environ.get(k)]
        if missing:
            parser.error(f"--keys-from-env: {', '.join(missing)} not set")
        app_key, app_secret, consumer = (os.environ["OVH_APPLICATION_KEY"], os.environ["OVH_APPLICATION_SECRET"],
                                         os.environ["OVH_CONSUMER_KEY"])
    else:
        app_key, app_secret, consumer = secrets.token_hex(8), secrets.token_hex(16), secrets.token_hex(16)
    nic, password = "lab-ovh", secrets.token_urlsafe(12)
    seed = {
        "applications": {app_key: {"secret": app_secret}},
        "consumerKeys": {consumer: {"applicationKey": app_key, "state": "validated",
                                    "rules": [{"method": m, "path": "/*"} for m in ("GET", "POST", "PUT", "DELETE")]}},
        "services": services,
        "failoverIps": {ip: {"routedTo": args.routed_to} for ip in args.failover_ip},
        "sms": {args.sms_service: {"senders": args.sms_sender, "credits": 100}} if args.sms_service else {},
        "soapi": {"accounts": {nic: {"password": password}}},
        "settings": {"moveDelay": args.move_delay},
    }
    AccountState(seed)  # validates the failover IPs
    _write_private(args.state_file, seed)
    _write_private(args.credentials_file, {"endpoint": args.endpoint, "application_key": app_key,
                                           "application_secret": app_secret, "consumer_key": consumer,
                                           "soapi": {"nic": nic, "password": password}})
    print(f"wrote {args.state_file} and {args.credentials_file}")
    return 0


def serve(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.ovh_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--state-file", help="seed account (JSON); written back on change")
    parser.add_argument("--no-persist", action="store_true", help="never write the state file")
    parser.add_argument("--move-delay", type=float, help="seconds a move task takes (overrides the state file)")
    parser.add_argument("--ready-file", help="write the URL there once listening")
    parser.add_argument("--route-command", help="run after each routing change (and at start) with {ip}, {cidr}, "
                        "{service}, {address} filled in, e.g. 'lab/lab.py route {ip} {address}'")
    args = parser.parse_args(argv)

    if args.state_file:
        state = AccountState.from_file(args.state_file, persist=not args.no_persist)
    else:
        state = AccountState({})
    if args.move_delay is not None:
        state.settings["moveDelay"] = args.move_delay
    emulator = Emulator(state, args.host, args.port,
                        route_command=shlex.split(args.route_command) if args.route_command else None)
    stopping = threading.Event()

    def _stop(signum: int, frame: Optional[object]) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=emulator.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"listening on {emulator.url} (REST API {emulator.endpoint}, SOAP {emulator.soap_url})", flush=True)
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as fh:
            fh.write(emulator.url + "\n")
    try:
        emulator.serve_forever()
    finally:
        emulator.httpd.server_close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "init":
        return init(argv[1:])
    if argv and argv[0] in ("up", "down", "status"):
        from lab.ovh_emulator.service import main as service
        return service(argv)
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
