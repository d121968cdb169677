"""python -m lab.mail_sink up|down|status|list [--json]|clear (see service.py); `serve` is what `up` runs."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional


def serve(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mail_sink serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="the store: <state>/mail")
    parser.add_argument("--ready-file", help="written with HOST:PORT once listening")
    args = parser.parse_args(argv)
    from lab.mail_sink.server import serve as run   # aiosmtpd: only the serving process needs it
    return run(args.host, args.port, Path(args.dir), Path(args.ready_file) if args.ready_file else None)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    from lab.mail_sink.service import main as service
    return service(argv)


if __name__ == "__main__":
    sys.exit(main())
