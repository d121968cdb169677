"""make drill [STACK=lab] [REAL=1]: crash the node holding the failover IP and time the failover.

    python -m drill [--stack lab] [--bound 300] [--json FILE] [--keep-stale-address]
    python -m drill --stack prod --real [--hold 180] [--ssh-key-file FILE]

On the lab stack the drill drives the netns lab (`lab/lab.py up` and the cluster deployed with `make demo`),
reads the OVH API emulator and the lab's mail sink. On the vmlab stack it drives the VM lab (`make demo LAB=vm`):
the crash kills the active VM's qemu while a writer appends fsync'ed records to the DRBD filesystem, and the
drill checks that every record the writer saw acknowledged is on the survivor. On any other stack it runs only with --real and after the
operator types the name of the node it will crash: it then cuts that server's network link and kills its
Heartbeat over SSH; the server brings its link back by itself after --hold seconds.

Exit status: 0 the failover passed, 1 it failed (not back within the bound, split brain, missing alert),
2 the drill refused to start.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from components.check_config import stack_values  # noqa: E402
from components.spec import CONCEALED, PROJECT, SpecError, parse_config  # noqa: E402
from drill.data import DataCheck  # noqa: E402
from drill.hosts import LabHosts, SshHosts, VmHosts  # noqa: E402
from drill.run import DEFAULT_BOUND, Drill, timeline  # noqa: E402

LAB_STACK = "lab"
VM_STACK = "vmlab"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m drill", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=LAB_STACK)
    parser.add_argument("--stack-file", help="the stack's configuration (default Pulumi.<stack>.yaml here)")
    parser.add_argument("--bound", type=float, default=DEFAULT_BOUND,
                        help="seconds within which the service must answer again (default 300, the tutorial's)")
    parser.add_argument("--watch", type=float, help="seconds to watch the returned node (default 3 x deadtime, "
                        "at least 10)")
    parser.add_argument("--json", help="also write the report there")
    parser.add_argument("--keep-stale-address", action="store_true",
                        help="bring the crashed node back still holding the failover IP (a node that did not "
                             "reboot): the drill must then report a split brain")
    parser.add_argument("--real", action="store_true", help="a real cluster: crash a real server (asks first)")
    parser.add_argument("--hold", type=float, default=180.0, help="--real: seconds the server stays cut off")
    parser.add_argument("--ssh-key-file", help="--real: the private key for the servers (else sshKeyFile)")
    return parser.parse_args(argv)


def load_spec(stack_file: Path, ssh_key_file=None):
    """The stack's cluster as the program sees it. The drill needs no OVH credential (it reads no secret), so
    those may be missing from the stack file; the SSH key may come from --ssh-key-file."""
    document = yaml.safe_load(stack_file.read_text()) or {}
    values, secret_keys, problems = stack_values(document.get("config") or {})
    if problems:
        raise SpecError(problems)
    for key in ("ovh:applicationKey", "ovh:applicationSecret", "ovh:consumerKey", f"{PROJECT}:agentConsumerKey"):
        if key not in values:
            values[key], secret_keys = CONCEALED, secret_keys | {key}
    if ssh_key_file:
        values[f"{PROJECT}:sshKeyFile"] = ssh_key_file
        values.pop(f"{PROJECT}:sshPrivateKey", None)
    elif f"{PROJECT}:sshKeyFile" not in values and f"{PROJECT}:sshPrivateKey" not in values:
        values[f"{PROJECT}:sshPrivateKey"], secret_keys = CONCEALED, secret_keys | {f"{PROJECT}:sshPrivateKey"}
    return parse_config(values, secret_keys)


def lab_mail():
    from lab import mail_sink
    return mail_sink.messages


def main(argv=None) -> int:
    args = parse_args(argv)
    stack_file = Path(args.stack_file) if args.stack_file else REPO / f"Pulumi.{args.stack}.yaml"
    try:
        spec = load_spec(stack_file, args.ssh_key_file)
    except OSError as err:
        print(f"drill: cannot read {stack_file}: {err.strerror or err}", file=sys.stderr)
        return 2
    except SpecError as err:
        print(f"drill: {stack_file.name}: {err}", file=sys.stderr)
        return 2
    if not 0 < args.bound <= 3600:
        print(f"drill: --bound {args.bound:g}: expected seconds between 0 and 3600", file=sys.stderr)
        return 2
    data_check = None
    if args.stack == VM_STACK:
        if args.real:
            print("drill: --real is for real clusters; the vmlab stack is driven through the VM lab", file=sys.stderr)
            return 2
        if os.geteuid() != 0 or subprocess.run([sys.executable, "-m", "vmlab", "status"], cwd=REPO,
                                               capture_output=True).returncode != 0:
            print("drill: the VM lab drill needs root and both VMs up with the cluster deployed "
                  "(make demo LAB=vm)", file=sys.stderr)
            return 2
        if args.keep_stale_address:
            print("drill: --keep-stale-address needs a node that comes back without rebooting; a VM lab crash "
                  "is a power cut and the VM reboots", file=sys.stderr)
            return 2
        hosts = VmHosts.from_lab(spec, spec.failover_ip.cidr)
        emulator, mail = spec.ovh_api.endpoint, lab_mail()
        if spec.drbd.enabled:
            data_check = DataCheck(hosts, spec, REPO / ".vmlab" / "drill")
    elif args.stack == LAB_STACK:
        if args.real:
            print("drill: --real is for real clusters; the lab stack is driven through the lab", file=sys.stderr)
            return 2
        if os.geteuid() != 0 or not (REPO / ".lab" / "hosts.json").exists():
            print("drill: the lab drill needs root and the lab up with the cluster deployed (make demo)",
                  file=sys.stderr)
            return 2
        hosts, emulator, mail = LabHosts(), spec.ovh_api.endpoint, lab_mail()
    else:
        if not args.real:
            print(f"drill: stack {args.stack} is not the lab: a drill there crashes a real server. Run it with "
                  f"--real (make drill STACK={args.stack} REAL=1) and confirm", file=sys.stderr)
            return 2
        missing = [n.name for n in spec.nodes if not n.ssh.host_key]
        if missing:
            print(f"drill: nodes[].ssh.hostKey is not declared for {', '.join(missing)}; the drill checks host "
                  "keys and never trusts a key on first use", file=sys.stderr)
            return 2
        if not sys.stdin.isatty():
            print("drill: --real asks for a confirmation on a terminal; none here", file=sys.stderr)
            return 2
        hosts = ssh_hosts(spec, args)
        emulator, mail = None, None
    drill = Drill(spec, hosts, args.stack, bound=args.bound, emulator=emulator, mail_messages=mail,
                  keep_stale_address=args.keep_stale_address, watch=args.watch, data_check=data_check)
    if args.real and not confirm(drill):
        print("drill: not confirmed; nothing was done", file=sys.stderr)
        return 2
    report = drill.run()
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.passed else 1


def ssh_hosts(spec, args):
    from components.remote.ssh import Target
    key_file = args.ssh_key_file or spec.ssh_key_file
    targets = {n.name: Target(node=n.name, host=n.ssh.host or n.address, port=n.ssh.port, user=n.ssh.user,
                              host_key=n.ssh.host_key, key_file=key_file) for n in spec.nodes}
    return SshHosts(targets, spec.failover_ip.cidr, hold=args.hold, keep_stale_address=args.keep_stale_address)


def confirm(drill) -> bool:
    held = drill.holders()
    active = [n for n, h in held.items() if h]
    if len(active) != 1:
        print(f"drill: expected exactly one node holding the failover IP, found {active or 'none'}", file=sys.stderr)
        return False
    print(f"This cuts the network of {active[0]} and kills its Heartbeat; it comes back by itself after "
          f"{drill.hosts.hold:g} s. Service on {drill.spec.failover_ip.address} is interrupted meanwhile.")
    answer = input(f"Type the name of the server to crash ({active[0]}) to go on: ").strip()
    return answer == active[0]


def print_report(report) -> None:
    print(f"drill {report.stack}: {report.crashed or '?'} -> {report.survivor or '?'}, failover IP "
          f"{report.failover_ip}")
    for line in timeline(report):
        print(line)
    if report.interruption is not None and report.crash_kind == VmHosts.crash_kind:
        delay = report.move_delay
        net = f"; minus the OVH move delay ({delay:g} s): {report.interruption - delay:.2f} s" if delay else ""
        print(f"service back {report.interruption:.2f} s after the crash (the survivor DRBD Primary, mounted, "
              f"holding the IP and OVH routing it there){net}")
        split = report.split
        print("split: " + ", ".join(f"{k} {v:.2f} s" if v is not None else f"{k} ?" for k, v in split.items()))
    elif report.interruption is not None:
        delay = report.move_delay
        net = f"; minus the OVH move delay ({delay:g} s): {report.interruption - delay:.2f} s" if delay is not None else ""
        print(f"interruption {report.interruption:.2f} s (last answer to first answer again, "
              f"{report.lost_probes} probes lost){net}")
        split = report.split
        print("split: " + ", ".join(f"{k} {v:.2f} s" if v is not None else f"{k} ?" for k, v in split.items()))
    if report.data is not None:
        d = report.data
        print(f"data: {d.get('acked', 0)} records acknowledged to the writer before the crash, "
              f"{d.get('present', 0)} on {report.survivor}'s DRBD filesystem, "
              f"{len(d.get('missing', []))} acknowledged but missing"
              + ("; the last record was cut mid-write (never acknowledged)" if d.get("tornTail") else ""))
    if report.move_calls is not None:
        print(f"OVH move calls during the drill: {report.move_calls}")
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"FAIL: {problem}")
    print("drill: PASS" if report.passed else "drill: FAIL")


if __name__ == "__main__":
    sys.exit(main())
