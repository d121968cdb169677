"""What the emulated OVH account holds, and the rules that change it.

Everything lives in one JSON-able dict so a lab can be seeded from a file and a test can read it back.
Seed format (all keys optional but `applications` for anything signed):

  applications:  {applicationKey: {"secret": applicationSecret}}
  consumerKeys:  {consumerKey: {"applicationKey": ..., "state": "validated"|"pendingValidation"|"refused"
                                |"revoked", "rules": [{"method": "GET", "path": "/ip/*"}, ...]}}
  services:      {serviceName: {"ip": main IPv4 address}}      (dedicated servers; soapi routes to addresses)
  failoverIps:   {"203.0.113.10/32": {"routedTo": serviceName}}
  sms:           {smsServiceName: {"senders": ["OVHHA"], "credits": 100}}
  soapi:         {"accounts": {nic: {"password": ...}}}
  settings:      {"moveDelay": seconds, "timeTolerance": seconds}

The emulator adds `tasks` and `smsJobs` as it runs. A move is a task that ends `moveDelay` seconds after it
was created: until then it is `todo` (first half) then `doing`; then it takes the status queued for it
(done by default) and, when done, the routing changes. Every request first settles the tasks that are due,
so answers are the same whether or not anyone polls; a running emulator also settles them on a 100 ms tick,
so a routing change happens on time even when nobody asks (what a lab network that follows the routing
needs). `route_listeners` are called with (ip, serviceName, main address) after every routing change.
"""
import copy
import datetime
import ipaddress
import json
import os
import secrets
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

TASK_FUNCTION = "genericMoveFloatingIp"
PENDING = ("todo", "doing")
FINAL = ("done", "cancelled", "customerError", "ovhError")
DEFAULT_SETTINGS = {"moveDelay": 0.0, "timeTolerance": 30}


class ApiError(Exception):
    """An answer the API gives with an error status: the body is the real API's shape."""

    def __init__(self, status: int, message: str, cls: Optional[str] = None, error_code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.body: Dict[str, Any] = {"message": message}
        if cls:
            self.body["class"] = cls
        if error_code:
            self.body["errorCode"] = error_code
            self.body["httpCode"] = f"{status} {_REASONS.get(status, 'Error')}"


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"The requested object ({what}) does not exist", "Client::NotFound")


class AccountState:
    """The account, behind one lock. Every public method takes it."""

    def __init__(self, seed: Optional[Dict[str, Any]] = None, state_file: Optional[str] = None,
                 persist: bool = False):
        self.lock = threading.RLock()
        self.state_file = state_file
        self.persist = persist and state_file is not None
        self.clock_offset = 0.0
        self._seed = copy.deepcopy(seed or {})
        self.data: Dict[str, Any] = {}
        self.route_listeners: List[Any] = []
        self.reset()

    # ---------------------------------------------------------------------------------------- lifecycle

    @classmethod
    def from_file(cls, path: str, persist: bool = True) -> "AccountState":
        with open(path, encoding="utf-8") as fh:
            seed = json.load(fh)
        return cls(seed, state_file=path, persist=persist)

    def reset(self) -> None:
        """Back to the seed: routing, tasks, SMS jobs, credentials and the clock."""
        with self.lock:
            data = copy.deepcopy(self._seed)
            for key in ("applications", "consumerKeys", "services", "failoverIps", "sms", "soapi",
                        "credentialTokens"):
                data.setdefault(key, {})
            data.setdefault("tasks", [])
            data.setdefault("smsJobs", [])
            data["settings"] = {**DEFAULT_SETTINGS, **data.get("settings", {})}
            normalized = {}
            for name, entry in data["failoverIps"].items():
                normalized[str(ipaddress.ip_network(name, strict=False))] = entry
            data["failoverIps"] = normalized
            self.data = data
            self.clock_offset = 0.0
            self.task_outcomes: List[Dict[str, Any]] = []
            for name in sorted(data["failoverIps"]):
                self._routed(name)    # the seed's routing is a routing change for whoever follows it

    def save(self) -> None:
        """Write the account back to its file (0600: it holds the lab's secrets)."""
        if not self.persist:
            return
        directory = os.path.dirname(os.path.abspath(self.state_file))
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.state_file)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # ------------------------------------------------------------------------------------------ clock

    def now(self) -> float:
        return time.time() + self.clock_offset

    @property
    def settings(self) -> Dict[str, Any]:
        return self.data["settings"]

    # ------------------------------------------------------------------------------------ credentials

    def application_secret(self, application_key: str) -> Optional[str]:
        app = self.data["applications"].get(application_key)
        return app.get("secret") if app else None

    def consumer_key(self, consumer_key: str) -> Optional[Dict[str, Any]]:
        return self.data["consumerKeys"].get(consumer_key)

    def new_credential(self, application_key: str, rules: List[Dict[str, str]], redirection: Optional[str],
                       base_url: str) -> Dict[str, Any]:
        with self.lock:
            ck = secrets.token_hex(16)
            token = secrets.token_urlsafe(24)
            self.data["consumerKeys"][ck] = {"applicationKey": application_key, "state": "pendingValidation",
                                             "rules": rules, "redirection": redirection,
                                             "creation": iso(self.now())}
            self.data["credentialTokens"][token] = ck
            self.save()
            return {"validationUrl": f"{base_url}/auth/?credentialToken={token}", "consumerKey": ck,
                    "state": "pendingValidation"}

    def validate_token(self, token: str) -> Dict[str, Any]:
        """What the account owner does by visiting the validation URL and accepting the rules."""
        with self.lock:
            ck = self.data["credentialTokens"].pop(token, None)
            if ck is None or ck not in self.data["consumerKeys"]:
                raise not_found(f"credentialToken = {token}")
            entry = self.data["consumerKeys"][ck]
            entry["state"] = "validated"
            self.save()
            return {"consumerKey": ck, "state": "validated", "redirection": entry.get("redirection")}

    def revoke(self, consumer_key: Optional[str]) -> List[str]:
        with self.lock:
            keys = [consumer_key] if consumer_key else list(self.data["consumerKeys"])
            for key in keys:
                if key in self.data["consumerKeys"]:
                    self.data["consumerKeys"][key]["state"] = "revoked"
            self.save()
            return keys

    # ------------------------------------------------------------------------------------ failover IPs

    def find_ip(self, raw: str) -> str:
        """The account's name for the IP in a path: "203.0.113.10/32" for "203.0.113.10" or the block."""
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ApiError(400, f"Invalid IP block: {raw}", "Client::BadRequest")
        name = str(network)
        if name not in self.data["failoverIps"]:
            raise not_found(f"ip = {raw}")
        return name

    def list_ips(self, ip: Optional[str], ip_type: Optional[str], routed_to: Optional[str]) -> List[str]:
        with self.lock:
            self.settle()
            wanted = None
            if ip:
                try:
                    wanted = ipaddress.ip_network(ip, strict=False)
                except ValueError:
                    raise ApiError(400, f"Invalid value for parameter ip: {ip}", "Client::BadRequest")
            names = []
            for name, entry in sorted(self.data["failoverIps"].items()):
                if ip_type and ip_type != "failover":
                    continue
                if wanted is not None and not ipaddress.ip_network(name).overlaps(wanted):
                    continue
                if routed_to and entry.get("routedTo") != routed_to:
                    continue
                names.append(name)
            return names

    def ip_properties(self, raw: str) -> Dict[str, Any]:
        with self.lock:
            self.settle()
            name = self.find_ip(raw)
            entry = self.data["failoverIps"][name]
            return {"ip": name, "type": "failover", "routedTo": {"serviceName": entry.get("routedTo")},
                    "canBeTerminated": False, "country": entry.get("country", "fr"),
                    "description": entry.get("description"), "organisationId": None, "isAdditionalIp": True}

    def pending_task(self, name: str) -> Optional[Dict[str, Any]]:
        for task in self.data["tasks"]:
            if task["ip"] == name and task["function"] == TASK_FUNCTION and task["status"] in PENDING:
                return task
        return None

    def move(self, raw: str, to: Any, nexthop: Any = None) -> Dict[str, Any]:
        with self.lock:
            self.settle()
            name = self.find_ip(raw)
            if not isinstance(to, str) or not to:
                raise ApiError(400, "Missing parameter: to", "Client::BadRequest")
            if to not in self.data["services"]:
                raise ApiError(400, f"{to} is not a valid destination for {name}", "Client::BadRequest")
            if self.data["failoverIps"][name].get("routedTo") == to:
                raise ApiError(400, f"{name} is already routed to {to}", "Client::BadRequest")
            pending = self.pending_task(name)
            if pending is not None:
                raise ApiError(409, f"A move task (id {pending['taskId']}) is already pending for {name}",
                               "Client::Conflict")
            return self._new_task(name, to, nexthop)

    def _new_task(self, name: str, to: str, nexthop: Any) -> Dict[str, Any]:
        now = self.now()
        outcome = self.task_outcomes.pop(0) if self.task_outcomes else {"status": "done"}
        task_id = 1 + max([t["taskId"] for t in self.data["tasks"]], default=1000)
        task = {"taskId": task_id, "function": TASK_FUNCTION, "status": "todo", "ip": name,
                "destination": {"serviceName": to, "nexthop": nexthop}, "comment": None,
                "startDate": iso(now), "lastUpdate": iso(now), "doneDate": None,
                "_created": now, "_due": now + float(self.settings["moveDelay"]), "_outcome": outcome}
        self.data["tasks"].append(task)
        self.save()
        return public_task(task)

    def settle(self) -> None:
        """Advance every pending task to what the clock says it is now."""
        with self.lock:
            now = self.now()
            changed = False
            for task in self.data["tasks"]:
                if task["status"] not in PENDING:
                    continue
                if now >= task["_due"]:
                    outcome = task["_outcome"]
                    task["status"] = outcome.get("status", "done")
                    task["comment"] = outcome.get("comment")
                    task["doneDate"] = task["lastUpdate"] = iso(now)
                    task["_doneAt"] = now
                    if task["status"] == "done":
                        self.data["failoverIps"][task["ip"]]["routedTo"] = task["destination"]["serviceName"]
                        self._routed(task["ip"])
                    changed = True
                elif task["status"] == "todo" and now >= (task["_created"] + task["_due"]) / 2:
                    task["status"] = "doing"
                    task["lastUpdate"] = iso(now)
                    changed = True
            if changed:
                self.save()

    def task_ids(self, raw: str, function: Optional[str], status: Optional[str]) -> List[int]:
        with self.lock:
            self.settle()
            name = self.find_ip(raw)
            return [t["taskId"] for t in self.data["tasks"] if t["ip"] == name
                    and (function is None or t["function"] == function)
                    and (status is None or t["status"] == status)]

    def task(self, raw: str, task_id: str) -> Dict[str, Any]:
        with self.lock:
            self.settle()
            name = self.find_ip(raw)
            for task in self.data["tasks"]:
                if task["ip"] == name and str(task["taskId"]) == task_id:
                    return public_task(task)
            raise not_found(f"taskId = {task_id}")

    def set_routing(self, raw: str, service: str) -> Dict[str, Any]:
        """A move done elsewhere (the manager's web page): no task, immediate."""
        with self.lock:
            name = self.find_ip(raw)
            if service not in self.data["services"]:
                raise ApiError(400, f"unknown service {service}", "Client::BadRequest")
            self.data["failoverIps"][name]["routedTo"] = service
            self.save()
            self._routed(name)
            return {"ip": name, "routedTo": service}

    def _routed(self, name: str) -> None:
        service = self.data["failoverIps"][name].get("routedTo")
        address = (self.data["services"].get(service) or {}).get("ip")
        for listener in self.route_listeners:
            listener(name, service, address)

    def announce_routing(self) -> None:
        """Tell the listeners where every failover IP is routed now (at start-up)."""
        with self.lock:
            self.settle()
            for name in sorted(self.data["failoverIps"]):
                self._routed(name)

    # ---------------------------------------------------------------------------------------- soapi

    def service_by_address(self, address: str) -> Optional[str]:
        for name, entry in self.data["services"].items():
            if entry.get("ip") == address:
                return name
        return None

    # ------------------------------------------------------------------------------------------- sms

    def send_sms(self, service: str, body: Any) -> Dict[str, Any]:
        with self.lock:
            account = self.data["sms"].get(service)
            if account is None:
                raise not_found(f"serviceName = {service}")
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid body: an object is expected", "Client::BadRequest")
            message = body.get("message")
            receivers = body.get("receivers")
            if not isinstance(message, str) or not message:
                raise ApiError(400, "Missing parameter: message", "Client::BadRequest")
            if not isinstance(receivers, list) or not receivers:
                raise ApiError(400, "Missing parameter: receivers", "Client::BadRequest")
            sender = body.get("sender")
            senders = account.get("senders", [])
            if sender is not None and sender not in senders:
                raise ApiError(400, f"The sender {sender} does not exist for {service}", "Client::BadRequest")
            valid = [r for r in receivers if isinstance(r, str) and r.startswith("+") and r[1:].isdigit()]
            invalid = [r for r in receivers if r not in valid]
            ids = []
            for receiver in valid:
                job_id = 1 + max([j["id"] for j in self.data["smsJobs"]], default=50000)
                self.data["smsJobs"].append({"id": job_id, "service": service, "sender": sender,
                                             "receiver": receiver, "message": message,
                                             "creationDatetime": iso(self.now()),
                                             "tag": body.get("tag"), "labCreatedAt": self.now()})
                ids.append(job_id)
            account["credits"] = account.get("credits", 100) - len(ids)
            self.save()
            return {"ids": ids, "validReceivers": valid, "invalidReceivers": invalid,
                    "totalCreditsRemoved": len(ids), "tag": body.get("tag")}

    def sms_job_ids(self, service: str) -> List[int]:
        with self.lock:
            if service not in self.data["sms"]:
                raise not_found(f"serviceName = {service}")
            return [j["id"] for j in self.data["smsJobs"] if j["service"] == service]

    def sms_job(self, service: str, job_id: str) -> Dict[str, Any]:
        with self.lock:
            for job in self.data["smsJobs"]:
                if job["service"] == service and str(job["id"]) == job_id:
                    return {k: v for k, v in job.items() if not k.startswith("lab")}
            raise not_found(f"id = {job_id}")

    # ------------------------------------------------------------------------------------------ views

    def snapshot(self) -> Dict[str, Any]:
        """The account for /lab/state: secrets masked."""
        with self.lock:
            self.settle()
            data = copy.deepcopy(self.data)
            for app in data["applications"].values():
                if "secret" in app:
                    app["secret"] = "***"
            data["consumerKeys"] = {k[:4] + "***": v for k, v in data["consumerKeys"].items()}
            data.pop("credentialTokens", None)
            for account in data.get("soapi", {}).get("accounts", {}).values():
                account["password"] = "***"
            # the lab's precise clock readings (epoch seconds), for drills that time a failover
            data["tasks"] = [dict(public_task(t), labCreatedAt=t["_created"], labDoneAt=t.get("_doneAt"))
                             for t in data["tasks"]]
            data["clockOffset"] = self.clock_offset
            return data


def public_task(task: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in task.items() if not k.startswith("_")}
