#!/usr/bin/env python3
"""The local netns lab (as root):

  lab/lab.py up                 bring the lab up, or repair it; a no-op when it is up
  lab/lab.py down [--purge]     stop and delete all it made; --purge also deletes its keys and host disks
  lab/lab.py status             what is up (exit 0 up, 3 down, 1 partly up)
  lab/lab.py route IP HOST       route failover IP to HOST's main address, as OVH does (HOST=on-link: back to
                                the default, where whichever host holds IP answers ARP for it)
  lab/lab.py run HOST CMD...    run CMD inside HOST (ns11111, ns22222) or in the `outside` network;
                                lab/run HOST CMD... is the same. Exit status and output are CMD's (125: the lab
                                itself failed)

State: $LAB_STATE (default <repo>/.lab). See lab/README.md.
"""
import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run as a script, sys.path[0] is lab/, where this very file would shadow the `lab` package
sys.path[0] = str(REPO)

from lab.netlab.control import RUN_FAILED, Lab, LabError  # noqa: E402
from lab.netlab.state import Layout, state_dir  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lab/lab.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="bring the lab up or repair it")
    down = sub.add_parser("down", help="stop and delete everything the lab made")
    down.add_argument("--purge", action="store_true", help="also delete the lab's keys and host disks")
    sub.add_parser("status", help="print what is up")
    route = sub.add_parser("route", help="route a failover IP to a host, or back on-link")
    route.add_argument("address")
    route.add_argument("via", metavar="HOST|on-link")
    run = sub.add_parser("run", help="run a command inside a host")
    run.add_argument("host")
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        lab = Lab(Layout(state_dir()), say=lambda line: print(line, flush=True))
        if args.action == "up":
            lab.up()
        elif args.action == "down":
            lab.down(purge=args.purge)
        elif args.action == "status":
            return lab.status()
        elif args.action == "route":
            lab.route(args.address, args.via)
        else:
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            lab.run(args.host, command, term=os.environ.get("TERM"))
        return 0
    except (LabError, ValueError, RuntimeError) as error:   # RuntimeError: a failed `ip`, lock timeout...
        print(f"lab: {error}", file=sys.stderr)
        return RUN_FAILED if args.action == "run" else 1


if __name__ == "__main__":
    sys.exit(main())
