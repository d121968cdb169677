"""python3 -m vmlab up|down|status|kill NAME|start NAME|link up|down|ssh NAME CMD..."""
import argparse
import sys

from . import control
from .layout import Layout
from .tools import VmLabError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m vmlab", description="The two-VM Debian lab (see vmlab/README.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the base image if needed, boot both VMs, wait for SSH")
    sub.add_parser("down", help="stop the VMs this lab started (idempotent)")
    sub.add_parser("status", help="exit 0 up, 1 partly up, 3 down")
    p = sub.add_parser("kill", help="SIGKILL a VM's qemu (a power cut); its disks stay")
    p.add_argument("name")
    p = sub.add_parser("start", help="boot a stopped VM again on its existing disks")
    p.add_argument("name")
    p = sub.add_parser("link", help="cut (down) or restore (up) the link between the VMs; both keep running")
    p.add_argument("state", choices=("up", "down"))
    p = sub.add_parser("ssh", help="run a command on a VM as root")
    p.add_argument("name")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    layout = Layout()
    try:
        if args.command == "up":
            control.up(layout)
        elif args.command == "down":
            control.down(layout)
        elif args.command == "status":
            return control.status(layout)
        elif args.command == "kill":
            control.kill(layout, args.name)
        elif args.command == "start":
            control.start(layout, args.name)
        elif args.command == "link":
            control.set_link(args.state)
        elif args.command == "ssh":
            return control.ssh(layout, args.name, args.cmd)
    except VmLabError as e:
        print(f"vmlab: {e}", file=sys.stderr)
        return 1
    except KeyError as e:
        print(f"vmlab: {e.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
