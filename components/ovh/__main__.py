"""Operator commands on the OVH layer, with credentials from OVH_* variables or ovh.conf (python-ovh's way).

  python -m components.ovh request-credential --role operator|node --ip 203.0.113.10 [--sms-service S]
        ask for a consumer key limited to that role's calls; prints the rules, the key and the URL where
        the account owner validates it
  python -m components.ovh where --ip 203.0.113.10
  python -m components.ovh move --ip 203.0.113.10 --to ns22222.ovh.net [--timeout 300]
"""
import argparse
import json
import os
import sys
from typing import List, Optional

from components.ovh.credentials import ROLES, request_credential, rules_for
from components.ovh.errors import OvhError
from components.ovh.rest import RestBackend


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.ovh")
    parser.add_argument("--endpoint", help="python-ovh endpoint name or URL (default: OVH_ENDPOINT / ovh.conf)")
    parser.add_argument("--config-file", help="an ovh.conf to read besides the standard ones")
    commands = parser.add_subparsers(dest="command", required=True)
    request = commands.add_parser("request-credential")
    request.add_argument("--role", choices=ROLES, required=True)
    request.add_argument("--ip", required=True)
    request.add_argument("--sms-service")
    request.add_argument("--redirect", help="where the validation page sends the owner afterwards")
    request.add_argument("--allowed-ip", action="append", help="CIDR allowed to use the key (repeatable)")
    request.add_argument("--key-file", help="write the new consumer key there (mode 0600) instead of printing it")
    where = commands.add_parser("where")
    where.add_argument("--ip", required=True)
    move = commands.add_parser("move")
    move.add_argument("--ip", required=True)
    move.add_argument("--to", required=True, help="service name, e.g. ns22222.ovh.net")
    move.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    try:
        if args.command == "request-credential":
            rules = rules_for(args.role, args.ip, args.sms_service)
            answer = request_credential(rules, endpoint=args.endpoint, config_file=args.config_file,
                                        redirection=args.redirect, allowed_ips=args.allowed_ip)
            print("access rules requested:")
            for rule in rules:
                print(f"  {rule['method']:6} {rule['path']}")
            if args.key_file:
                fd = os.open(args.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(answer["consumerKey"])
                print(f"consumer key: written to {args.key_file} (mode 0600)")
            else:
                print(f"consumer key: {answer['consumerKey']}  (secret: store it with `pulumi config set --secret`)")
            print(f"state: {answer.get('state')}")
            print(f"validate it at: {answer['validationUrl']}")
            return 0
        backend = RestBackend(endpoint=args.endpoint, config_file=args.config_file)
        if args.command == "where":
            print(backend.where_routed(args.ip))
            return 0
        result = backend.move(args.ip, args.to, timeout=args.timeout)
        print(json.dumps(result.__dict__, indent=2, default=str))
        return 0
    except OvhError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
