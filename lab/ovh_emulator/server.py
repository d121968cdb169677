"""The emulator's HTTP server: the OVH REST API under /1.0, the legacy SOAP API under /soapi, and the
lab-only controls under /lab (faults, recorded calls, reset), which need no signature.

Every API call (not /lab) is recorded with its method, path, body, status and time, for tests to read
through GET /lab/calls.
"""
import json
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

from lab.ovh_emulator import soap
from lab.ovh_emulator.auth import authenticate
from lab.ovh_emulator.faults import FaultQueue, error_for
from lab.ovh_emulator.state import AccountState, ApiError, iso, not_found

API_PREFIX = "/1.0"
TICK = 0.1  # seconds between two settlements of due move tasks


class RouteHook:
    """Runs a command after each routing change, in order, off the request threads: the lab uses it to make
    its network follow the account (`lab/lab.py route {ip} {address}`), as OVH's routers follow a move.
    Placeholders: {ip} (the failover IP, no prefix for a /32), {cidr}, {service}, {address} (its main IP)."""

    def __init__(self, command: List[str]):
        self.command = command
        self.queue: "queue.Queue[tuple]" = queue.Queue()
        self.log: List[Dict[str, Any]] = []

    def start(self) -> None:
        threading.Thread(target=self._work, name="ovh-emulator-route-hook", daemon=True).start()

    def routed(self, cidr: str, service: Optional[str], address: Optional[str]) -> None:
        self.queue.put((time.time(), cidr, service, address))

    def _work(self) -> None:
        while True:
            when, cidr, service, address = self.queue.get()
            if not service or not address:
                continue
            ip = cidr[:-3] if cidr.endswith("/32") else cidr
            argv = [part.format(ip=ip, cidr=cidr, service=service, address=address) for part in self.command]
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                outcome = result.returncode
                detail = (result.stdout + result.stderr).strip()
            except (OSError, subprocess.TimeoutExpired) as err:
                outcome, detail = -1, str(err)
            entry = {"routedAt": when, "appliedAt": time.time(), "ip": cidr, "service": service,
                     "address": address, "exit": outcome, "output": detail[-300:]}
            self.log.append(entry)
            print(f"route hook: {cidr} -> {service} ({address}): exit {outcome} {detail[-200:]}", flush=True)


class Emulator:
    """A running emulator: its URLs, its account state, its fault queue and call log; `stop()` ends it."""

    def __init__(self, state: AccountState, host: str = "127.0.0.1", port: int = 0,
                 route_command: Optional[List[str]] = None):
        self.state = state
        self.route_hook = RouteHook(route_command) if route_command else None
        if self.route_hook:
            state.route_listeners.append(self.route_hook.routed)
        self._ticking = threading.Event()
        self.faults = FaultQueue()
        self.soap = soap.SoapApi(state)
        self._calls: List[Dict[str, Any]] = []
        self._calls_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"emulator": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        bound_host, bound_port = self.httpd.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self.port = bound_port
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """What python-ovh (through components.ovh) and the node agent take as their endpoint."""
        return self.url + API_PREFIX

    @property
    def soap_url(self) -> str:
        return self.url + "/soapi"

    def _tick(self) -> None:
        while not self._ticking.wait(TICK):
            self.state.settle()

    def _start_side_threads(self) -> None:
        threading.Thread(target=self._tick, name="ovh-emulator-tick", daemon=True).start()
        if self.route_hook:
            self.route_hook.start()
            self.state.announce_routing()

    def start(self) -> "Emulator":
        self._start_side_threads()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ovh-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._start_side_threads()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self._ticking.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------- call log

    def record(self, entry: Dict[str, Any]) -> None:
        entry.setdefault("epoch", time.time())  # the lab's precise clock, for drills that time a failover
        with self._calls_lock:
            self._calls.append(entry)

    def calls(self) -> List[Dict[str, Any]]:
        with self._calls_lock:
            return [dict(c) for c in self._calls]

    def clear_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    def reset(self) -> None:
        self.state.reset()
        self.faults.clear()
        self.clear_calls()
        self.soap.sessions.clear()


def start_emulator(state: Optional[Dict[str, Any]] = None, state_file: Optional[str] = None,
                   host: str = "127.0.0.1", port: int = 0, move_delay: Optional[float] = None,
                   persist: bool = False, route_command: Optional[List[str]] = None) -> Emulator:
    """Start an emulator in a background thread and return its handle (`.url`, `.endpoint`, `.stop()`).

    The account comes from `state` (a seed dict) or `state_file` (JSON, written back on change when
    `persist`). `move_delay` overrides the seed's settings.moveDelay (0 for tests, ~60 like the real API).
    """
    if state_file is not None:
        account = AccountState.from_file(state_file, persist=persist)
    else:
        account = AccountState(state or {})
    if move_delay is not None:
        account._seed.setdefault("settings", {})["moveDelay"] = move_delay
        account.settings["moveDelay"] = move_delay
    return Emulator(account, host, port, route_command=route_command).start()


def _split(raw_path: str) -> Tuple[str, Dict[str, str]]:
    path, _, query = raw_path.partition("?")
    return path, {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in two writes: no 40 ms delayed-ACK stall
    server_version = "ovh-emulator/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the call log is the record

    # ------------------------------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, content_type: str = "application/json; charset=utf-8",
              extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode("utf-8"))

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        raw = self._body()
        path, query = _split(self.path)
        if path.startswith(API_PREFIX + "/lab/") or path == API_PREFIX + "/lab":
            path = path[len(API_PREFIX):]
        try:
            if path.startswith("/lab/"):
                return self._lab(method, path, query, raw)
            if path == "/auth/" and method == "GET":
                result = self.emulator.state.validate_token(query.get("credentialToken", ""))
                return self._json(200, result)
            if path.startswith("/soapi"):
                return self._soap(method, path, query, raw)
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                return self._api(method, path[len(API_PREFIX):] or "/", query, raw)
            raise ApiError(404, "Got an invalid (or empty) URL", "Client::NotFound")
        except ApiError as err:
            self._json(err.status, err.body)

    # ------------------------------------------------------------------------------------------ API

    def _api(self, method: str, path: str, query: Dict[str, str], raw: bytes) -> None:
        emulator = self.emulator
        text = raw.decode("utf-8", errors="replace")
        entry: Dict[str, Any] = {"time": iso(time.time()), "method": method,
                                 "path": path + (("?" + self.path.partition("?")[2]) if "?" in self.path else ""),
                                 "body": _parse_json(text)}
        fault, dropped = self._injected(method, path, entry)
        if dropped:
            return None
        try:
            if fault is not None and fault["kind"] not in ("slow",):
                raise error_for(fault)
            url = f"http://{self.headers.get('Host', '')}{self.path}"
            headers = {k.lower(): v for k, v in self.headers.items()}
            authenticate(emulator.state, method, path, url, text, headers)
            status, result = self._route(method, path, query, entry["body"])
        except ApiError as err:
            status, result = err.status, err.body
            if "errorCode" in err.body:
                entry["errorCode"] = err.body["errorCode"]
        except Exception as err:  # a bug here must still answer, and be seen in the call log
            status, result = 500, {"class": "Server::InternalServerError", "message": f"emulator error: {err!r}"}
        # recorded before answering, so a client that got its answer finds its call in the log
        emulator.record({**entry, "status": status})
        self._json(status, result)

    def _injected(self, method: str, path: str, entry: Dict[str, Any]) -> Tuple[Optional[dict], bool]:
        """The fault queued for this call, if any: a dropped connection is handled here (and recorded), a slow
        answer waits here; any other fault is the caller's to answer. Returns (fault, dropped)."""
        emulator = self.emulator
        fault = emulator.faults.take(method, path)
        if fault is None:
            return None, False
        entry["fault"] = fault["kind"]
        if fault["kind"] == "drop":
            emulator.record({**entry, "status": 0})
            self._drop()
            return fault, True
        if fault["kind"] == "slow":
            time.sleep(float(fault.get("seconds", 1)))
        return fault, False

    def _route(self, method: str, path: str, query: Dict[str, str], body: Any) -> Tuple[int, Any]:
        state = self.emulator.state
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if (method, path) == ("GET", "/auth/time"):
            return 200, int(state.now())
        if (method, path) == ("POST", "/auth/credential"):
            if not isinstance(body, dict) or not isinstance(body.get("accessRules"), list):
                raise ApiError(400, "Missing parameter: accessRules", "Client::BadRequest")
            rules = [{"method": str(r.get("method", "")).upper(), "path": str(r.get("path", ""))}
                     for r in body["accessRules"] if isinstance(r, dict)]
            base = f"http://{self.headers.get('Host', '')}"
            return 200, state.new_credential(self.headers.get("X-Ovh-Application", ""), rules,
                                             body.get("redirection"), base)
        if (method, path) == ("GET", "/auth/currentCredential"):
            ck = state.consumer_key(self.headers.get("X-Ovh-Consumer", "")) or {}
            return 200, {"status": ck.get("state"), "rules": ck.get("rules", []),
                         "applicationKey": ck.get("applicationKey"), "creation": ck.get("creation")}
        if method == "GET" and parts == ["ip"]:
            return 200, state.list_ips(query.get("ip"), query.get("type"), query.get("routedTo.serviceName"))
        if parts[0] == "ip" and len(parts) >= 2:
            ip = parts[1]
            if method == "GET" and len(parts) == 2:
                return 200, state.ip_properties(ip)
            if method == "POST" and parts[2:] == ["move"]:
                body = body if isinstance(body, dict) else {}
                return 200, state.move(ip, body.get("to"), body.get("nexthop"))
            if method == "GET" and parts[2:] == ["task"]:
                return 200, state.task_ids(ip, query.get("function"), query.get("status"))
            if method == "GET" and len(parts) == 4 and parts[2] == "task":
                return 200, state.task(ip, parts[3])
        if parts[0] == "sms" and len(parts) >= 3 and parts[2] == "jobs":
            service = parts[1]
            if method == "POST" and len(parts) == 3:
                return 200, state.send_sms(service, body)
            if method == "GET" and len(parts) == 3:
                return 200, state.sms_job_ids(service)
            if method == "GET" and len(parts) == 4:
                return 200, state.sms_job(service, parts[3])
        raise ApiError(404, "Got an invalid (or empty) URL", "Client::NotFound")

    # ----------------------------------------------------------------------------------------- SOAP

    def _soap(self, method: str, path: str, query: Dict[str, str], raw: bytes) -> None:
        if method == "GET" and (path.endswith(".wsdl") or "wsdl" in query):
            return self._send(200, soap.wsdl(f"http://{self.headers.get('Host', '')}/soapi"),
                              "text/xml; charset=utf-8")
        if method != "POST":
            raise ApiError(405, "SOAP calls are POSTs", "Client::BadRequest")
        emulator = self.emulator
        entry: Dict[str, Any] = {"time": iso(time.time()), "method": method, "path": path, "body": None}
        fault, dropped = self._injected(method, path, entry)
        if dropped:
            return None
        if fault is not None and fault["kind"] != "slow":
            err = error_for(fault)
            emulator.record({**entry, "status": err.status})
            return self._json(err.status, err.body)
        try:
            operation, args = soap.parse(raw)
            entry["body"] = soap.redacted(operation, args)
            payload, status = emulator.soap.call(operation, args), 200
        except soap.SoapFault as fault_:
            entry["error"] = fault_.message
            payload, status = soap.fault_envelope(fault_), 500
        emulator.record({**entry, "status": status})
        self._send(status, payload, "text/xml; charset=utf-8")

    # ------------------------------------------------------------------------------------------ lab

    def _lab(self, method: str, path: str, query: Dict[str, str], raw: bytes) -> None:
        emulator = self.emulator
        body = _parse_json(raw.decode("utf-8", errors="replace"))
        if (method, path) == ("GET", "/lab/calls"):
            return self._json(200, emulator.calls())
        if (method, path) == ("POST", "/lab/calls/clear"):
            emulator.clear_calls()
            return self._json(200, [])
        if (method, path) == ("GET", "/lab/faults"):
            return self._json(200, emulator.faults.pending())
        if (method, path) == ("POST", "/lab/faults"):
            faults = body if isinstance(body, list) else [body]
            return self._json(200, [emulator.faults.add(f, emulator.state) for f in faults])
        if (method, path) == ("POST", "/lab/reset"):
            emulator.reset()
            return self._json(200, {"reset": True})
        if (method, path) == ("GET", "/lab/state"):
            return self._json(200, emulator.state.snapshot())
        if (method, path) == ("POST", "/lab/settings"):
            if not isinstance(body, dict) or set(body) - {"moveDelay", "timeTolerance"}:
                raise ApiError(400, "settings: expected an object with moveDelay and/or timeTolerance",
                               "Client::BadRequest")
            with emulator.state.lock:
                emulator.state.settings.update({k: float(v) for k, v in body.items()})
            return self._json(200, emulator.state.settings)
        if (method, path) == ("POST", "/lab/routing"):
            if not isinstance(body, dict):
                raise ApiError(400, "routing: expected {\"ip\": ..., \"routedTo\": ...}", "Client::BadRequest")
            return self._json(200, emulator.state.set_routing(str(body.get("ip")), str(body.get("routedTo"))))
        if (method, path) == ("POST", "/lab/validate"):
            token = body.get("credentialToken", "") if isinstance(body, dict) else ""
            return self._json(200, emulator.state.validate_token(token))
        if (method, path) == ("GET", "/lab/sms"):
            with emulator.state.lock:
                return self._json(200, list(emulator.state.data["smsJobs"]))
        if (method, path) == ("GET", "/lab/routes"):
            return self._json(200, list(emulator.route_hook.log) if emulator.route_hook else [])
        raise not_found(f"lab route {method} {path}")


def _parse_json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
