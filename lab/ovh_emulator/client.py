"""`lab/ovh METHOD PATH [JSON-BODY]`: one call to the lab's OVH API through python-ovh, answer printed as JSON.

Credentials come from a JSON file, {"endpoint", "application_key", "application_secret", "consumer_key"},
whose path is $OVH_LAB_CREDENTIALS, or by default .lab/ovh/credentials.json in the repository
(`python -m lab.ovh_emulator init` writes it). PATH is relative to the API root (/ip, /auth/time, ...);
/lab/... paths reach the emulator's lab controls (GET /lab/calls lists the recorded calls) and are sent
unsigned. A JSON-BODY of "-" is read from stdin.
"""
import json
import os
import sys
from typing import List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CREDENTIALS = os.path.join(REPO, ".lab", "ovh", "credentials.json")
USAGE = "usage: lab/ovh METHOD PATH [JSON-BODY|-]   (credentials: $OVH_LAB_CREDENTIALS or .lab/ovh/credentials.json)"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0].upper() not in ("GET", "POST", "PUT", "DELETE") \
            or not argv[1].startswith("/"):
        print(USAGE, file=sys.stderr)
        return 2
    method, path = argv[0].upper(), argv[1]
    body = None
    if len(argv) == 3:
        text = sys.stdin.read() if argv[2] == "-" else argv[2]
        try:
            body = json.loads(text)
        except ValueError as err:
            print(f"JSON-BODY is not JSON: {err}", file=sys.stderr)
            return 2
    path_to_credentials = os.environ.get("OVH_LAB_CREDENTIALS", DEFAULT_CREDENTIALS)
    try:
        with open(path_to_credentials, encoding="utf-8") as fh:
            credentials = json.load(fh)
    except (OSError, ValueError) as err:
        print(f"cannot read the lab credentials {path_to_credentials}: {err}", file=sys.stderr)
        return 2
    sys.path.insert(0, REPO)
    from ovh import exceptions

    from components.ovh.client import make_client
    client = make_client(credentials.get("endpoint"), credentials.get("application_key"),
                         credentials.get("application_secret"), credentials.get("consumer_key"), timeout=30)
    try:
        answer = client.call(method, path, body, not path.startswith("/lab/"))
    except exceptions.APIError as err:
        response = getattr(err, "response", None)
        status = f"HTTP {response.status_code} " if response is not None else ""
        print(f"{status}{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
