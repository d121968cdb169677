"""What the FailoverRouting dynamic provider does (components/ovh/routing.py), kept apart from the provider.

Pulumi pickles the provider and runs it in the engine's provider process; only the small provider class
travels, and it imports this module there. Everything here works on the plain property dicts the engine
hands over (camelCase keys, secrets already unwrapped) and returns plain dicts.

Properties (inputs, and outputs with the same names):
  ip           the failover IP or block, as declared ("203.0.113.10", "203.0.113.8/30")
  service      the OVH service `create` routes it to (the declared initialNode's)
  failBack     let `up` move it back to `service` after a failover; false: Heartbeat owns placement
  backend      "rest" (python-ovh) or "soapi" (the legacy SOAP API)
  endpoint     rest: python-ovh endpoint name or URL; soapi: the SOAP service URL. None: OVH_ENDPOINT/ovh.conf
  credentials  secret. rest: {applicationKey, applicationSecret, consumerKey}; soapi: {nic, password};
               None: python-ovh's OVH_* variables / ovh.conf (rest only)
  timeout      seconds a move may take, pending moves and task included
  soapi        soapi only: {dedicated: server the IP belongs to, addresses: {service: main IPv4}}
  handOver     true in a cluster: a fail-back is Heartbeat's hand-over of the resource group (its resource
               script moves the IP), so this resource never moves it after creation; false: `up` moves it
  nodes        {service name: node name}, to name the active node
  routedTo     only with failBack: the service `up` keeps the IP routed to (= service)
Outputs:
  routedTo     the service OVH routes the IP to, as last read (create, update, refresh)
  activeNode   the node whose service that is (None: neither)
  ipName       the account's name for the IP ("203.0.113.10/32")
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from components.ovh.backend import FailoverBackend, canonical_ip
from components.ovh.errors import OvhAuthError, OvhConfigError, OvhError, OvhTaskFailed, OvhTimeout

INPUTS = ("ip", "service", "failBack", "backend", "endpoint", "credentials", "timeout", "soapi", "handOver", "nodes")
WANTED = "routedTo"  # an input only with failBack: the routing `up` restores (the declared service)
OUTPUTS = ("routedTo", "ipName", "activeNode")
SEEN = "activeNode"  # an input set by `read` only: what refresh saw, so that a failover shows in its plan
BEFORE = "routedBefore"  # an output set by `read`: the routing it replaced
BACKENDS = ("rest", "soapi")
REST_KEYS = ("applicationKey", "applicationSecret", "consumerKey")
SOAPI_KEYS = ("nic", "password")
DEFAULT_TIMEOUT = 300.0
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the engine marks a value not known during preview

Log = Callable[[str], None]


class RoutingError(Exception):
    """A failure the operator reads in the engine's output: it names the IP and the service."""


def inputs_of(props: Mapping[str, Any]) -> Dict[str, Any]:
    """The inputs among the properties (without the routedTo input, which only mirrors failBack)."""
    return {k: props.get(k) for k in INPUTS}


# ------------------------------------------------------------------------------------------------- check

def check(news: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(property, reason) for every input that cannot work; nothing is sent to OVH."""
    failures: List[Tuple[str, str]] = []
    ip = news.get("ip")
    if ip != UNKNOWN:
        try:
            canonical_ip(str(ip))
        except OvhConfigError as err:
            failures.append(("ip", str(err)))
    service = news.get("service")
    if service != UNKNOWN and (not isinstance(service, str) or not service.strip()):
        failures.append(("service", f"{service!r}: expected the OVH service name of a server, e.g. ns11111.ovh.net"))
    backend = news.get("backend") or "rest"
    if backend != UNKNOWN and backend not in BACKENDS:
        failures.append(("backend", f"{backend!r}: expected one of {', '.join(BACKENDS)}"))
    timeout = news.get("timeout")
    if timeout not in (None, UNKNOWN) and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                           or timeout <= 0):
        failures.append(("timeout", f"{timeout!r}: expected a positive number of seconds"))
    fail_back = news.get("failBack")
    if fail_back not in (None, UNKNOWN) and not isinstance(fail_back, bool):
        failures.append(("failBack", f"{fail_back!r}: expected true or false"))
    credentials = news.get("credentials")
    if credentials not in (None, UNKNOWN):
        wanted = SOAPI_KEYS if backend == "soapi" else REST_KEYS
        if not isinstance(credentials, dict):
            failures.append(("credentials", f"expected an object with {', '.join(wanted)} (value hidden)"))
        else:
            missing = [k for k in wanted if not credentials.get(k)]
            if missing:
                failures.append(("credentials", f"missing {', '.join(missing)} (values hidden); expected "
                                                f"{', '.join(wanted)} for the {backend} backend"))
    if backend == "soapi":
        soapi = news.get("soapi")
        if soapi != UNKNOWN and (not isinstance(soapi, dict) or not soapi.get("dedicated")
                                 or not isinstance(soapi.get("addresses"), dict)):
            failures.append(("soapi", f"{soapi!r}: the soapi backend needs {{dedicated: server the IP belongs to, "
                                      "addresses: {service: main IPv4}}"))
        if credentials is None:
            failures.append(("credentials", "the soapi backend needs {nic, password}; it reads no ovh.conf"))
        if news.get("endpoint") in (None, ""):
            failures.append(("endpoint", "the soapi backend needs the SOAP service URL"))
    return failures


# ----------------------------------------------------------------------------------------------- backend

def make_backend(props: Mapping[str, Any]) -> FailoverBackend:
    """The backend the properties name, with their credentials (None: python-ovh's env / ovh.conf)."""
    credentials = props.get("credentials") or {}
    endpoint = props.get("endpoint") or None
    if (props.get("backend") or "rest") == "soapi":
        from components.ovh.soapi import SoapiBackend
        soapi = props.get("soapi") or {}
        return SoapiBackend(endpoint or "", credentials.get("nic") or "", credentials.get("password") or "",
                            soapi.get("dedicated") or "", soapi.get("addresses") or {})
    from components.ovh.rest import RestBackend
    return RestBackend(endpoint=endpoint, application_key=credentials.get("applicationKey"),
                       application_secret=credentials.get("applicationSecret"),
                       consumer_key=credentials.get("consumerKey"))


def _explain(action: str, props: Mapping[str, Any], err: Exception) -> RoutingError:
    ip, service = props.get("ip"), props.get("service")
    if isinstance(err, OvhAuthError):
        hint = ("the OVH API refused the credentials or the call; check ovh:applicationKey, "
                "ovh:applicationSecret, ovh:consumerKey and the consumer key's access rules")
    elif isinstance(err, OvhConfigError):
        hint = "fix the OVH settings (ovh:endpoint, credentials); nothing was sent"
    elif isinstance(err, OvhTaskFailed):
        hint = f"OVH ended the move task with status {err.status}"
    elif isinstance(err, OvhTimeout):
        hint = f"the move did not finish within {props.get('timeout') or DEFAULT_TIMEOUT:g} s; it may still complete"
    elif isinstance(err, OvhError):
        hint = "the OVH API failed"
    else:
        hint = f"unexpected {type(err).__name__}"
    return RoutingError(f"failover IP {ip} (declared service {service}): {action} failed: {hint}: {err}")


def active_node(props: Mapping[str, Any], routed: Optional[str]) -> Optional[str]:
    return (props.get("nodes") or {}).get(routed) if routed else None


def _timeout(props: Mapping[str, Any]) -> float:
    return float(props.get("timeout") or DEFAULT_TIMEOUT)


def where_routed(props: Mapping[str, Any]) -> str:
    try:
        return make_backend(props).where_routed(str(props["ip"]))
    except Exception as err:  # noqa: BLE001 - every failure becomes one message naming the IP and service
        raise _explain("reading where OVH routes it", props, err) from None


def route(props: Mapping[str, Any], why: str, log: Log) -> Dict[str, Any]:
    """Route the IP to props["service"] and wait; returns routedTo/ipName."""
    ip, service = str(props["ip"]), str(props["service"])
    try:
        result = make_backend(props).move(ip, service, timeout=_timeout(props))
    except Exception as err:  # noqa: BLE001
        raise _explain(f"routing it to {service}", props, err) from None
    if result.moved:
        task = f" (task {result.task_id})" if result.task_id is not None else ""
        log(f"failover IP {result.ip}: moved from {result.previous} to {result.service}{task}: {why}")
    else:
        log(f"failover IP {result.ip}: already routed to {result.service}, nothing moved")
    return {"routedTo": result.service, "ipName": result.ip, "activeNode": active_node(props, result.service)}


# ---------------------------------------------------------------------------------------------- lifecycle

def create(props: Mapping[str, Any], log: Log) -> Tuple[str, Dict[str, Any]]:
    inputs = inputs_of(props)
    outs = route(inputs, "routed to the declared initial node", log)
    return outs["ipName"], {**inputs, **outs}


def read(id_: str, props: Mapping[str, Any], log: Log) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """(outputs, inputs) as OVH has them now. Only routedTo can change: in the outputs always; in the inputs
    only with failBack, where the routedTo input is the wanted routing, so that refresh shows the drift and
    the next `up` shows the move back. Inputs None: unchanged."""
    routed = where_routed(props)
    previous = props.get("routedTo")
    name = props.get("ipName") or props.get("ip")
    active = active_node(props, routed)
    if previous and routed != previous:
        log(f"failover IP {name}: OVH now routes it to {routed}" + (f" (node {active}; " if active else " (")
            + f"was {previous}); a failover or a move made outside Pulumi")
    outs = {**props, "routedTo": routed, SEEN: active, BEFORE: previous}
    # routedTo and activeNode go to the inputs as seen, so the refresh plan shows a failover (`~ routedTo`,
    # `~ activeNode`); with failBack, routedTo is also the routing `up` restores
    inputs = {**inputs_of(props), "routedTo": routed, SEEN: active}
    return outs, inputs


def wants_fail_back(olds: Mapping[str, Any], news: Mapping[str, Any],
                    observe: Optional[Callable[[Mapping[str, Any]], str]] = None) -> Optional[str]:
    """Where the IP is routed when `up` must move it back to the declared service, else None.

    Only with failBack: what the state says (as the last refresh saw it) or, when `observe` is given, what OVH
    says now, so the plan shows a fail-back even before a refresh."""
    if news.get("failBack") is not True or news.get("service") == UNKNOWN:
        return None
    routed = olds.get("routedTo")
    if observe is not None:
        routed = observe(news if news.get("credentials") != UNKNOWN else {**news, "credentials": olds.get("credentials")})
    return routed if routed and routed != news.get("service") else None


def diff(olds: Mapping[str, Any], news: Mapping[str, Any],
         observe: Optional[Callable[[Mapping[str, Any]], str]] = None) -> Dict[str, Any]:
    """{"changes": [property names], "replaces": [...], "failBackFrom": service or None, "message": text or None}.

    A new IP replaces the resource. Other input changes (credentials, endpoint, timeout, failBack, even the
    declared service) are an update that records them and moves nothing, except a fail-back: failBack true
    and the IP routed elsewhere than the declared service."""
    changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
    replaces = []
    if "ip" in changed and news.get("ip") != UNKNOWN:
        try:
            same = canonical_ip(str(olds.get("ip"))) == canonical_ip(str(news.get("ip")))
        except OvhConfigError:
            same = False
        if same:
            changed.remove("ip")
        else:
            replaces.append("ip")
    elif "ip" in changed:
        replaces.append("ip")
    fail_back_from = None if replaces else wants_fail_back(olds, news, observe)
    # A refresh that saw the routing change: the engine diffs what `read` returned (olds) against the inputs,
    # so the refresh plan shows this resource changed; the next `up` records it (moving nothing) and clears it.
    if (fail_back_from is None and not replaces and olds.get(BEFORE)
            and olds.get(BEFORE) != olds.get("routedTo")):
        changed += [WANTED, SEEN]
    message = None
    name = olds.get("ipName") or news.get("ip")
    if fail_back_from is not None:
        changed.append(WANTED)
        if news.get("handOver") is True:
            message = (f"failover IP {name}: routed to {fail_back_from}; failBack is true, so `up` has Heartbeat hand "
                       f"the resource group back to {news.get('service')}'s node (hb_takeover), whose resource script "
                       "moves the IP; nothing is routed behind Heartbeat's back")
        else:
            message = (f"failover IP {name}: routed to {fail_back_from}; failBack is true, so `up` moves it back to "
                       f"{news.get('service')}")
    elif (not replaces and news.get("failBack") is not True and olds.get("routedTo")
          and olds.get("routedTo") != news.get("service")):
        message = (f"failover IP {name}: routed to {olds.get('routedTo')}, not the declared {news.get('service')}; "
                   "failBack is false, so `up` leaves it there (Heartbeat owns placement)")
    return {"changes": changed, "replaces": replaces, "failBackFrom": fail_back_from, "message": message}


def update(olds: Mapping[str, Any], news: Mapping[str, Any], log: Log) -> Dict[str, Any]:
    inputs = inputs_of(news)
    service = inputs["service"]
    routed = where_routed(inputs)
    recorded = {**inputs, "routedTo": routed, "ipName": olds.get("ipName") or canonical_ip(str(inputs["ip"])),
                SEEN: active_node(inputs, routed)}
    if routed == service:
        return recorded
    if inputs.get("failBack") is True and inputs.get("handOver") is True:
        log(f"failover IP {inputs['ip']}: routed to {routed}; Heartbeat's hand-over brings it back to {service} "
            "(the HandOver resource of the Heartbeat group); the next refresh records the new routing")
    elif inputs.get("failBack") is True:
        log(f"failover IP {inputs['ip']}: routed to {routed}; failBack is true, so moving it back to {service}")
        return {**inputs, **route(inputs, "failBack is true", log)}
    else:
        log(f"failover IP {inputs['ip']}: routed to {routed}, not the declared {service}; failBack is false, so it "
            "stays there (Heartbeat owns placement; set failBack: true to move it back)")
    return recorded


def delete(props: Mapping[str, Any], log: Log) -> None:
    log(f"failover IP {props.get('ipName') or props.get('ip')}: left routed as it is (last seen routed to "
        f"{props.get('routedTo')}); removing it from the stack moves nothing at OVH")
