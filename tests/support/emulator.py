"""The OVH API emulator's lab routes (`/lab/...`: state, calls, SMS jobs, reset), as the tests read them."""
import json
import urllib.request

EMULATOR = "http://127.0.0.1:18080/1.0"


def lab_api(path: str, body=None):
    """GET `path`, or POST `body` as JSON to it; the decoded answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(EMULATOR + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read().decode())
