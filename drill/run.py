"""The failover drill: crash the node holding the failover IP, time how the service comes back, check the
alerts, bring the node back and check that it does not take the IP back.

The service is "back" when a probe from outside answers again and the other node holds the IP (by its
resource script's own status: the address on an interface that is up). A moment where both nodes hold it is a
split brain and fails the drill, whenever it is seen.
"""
import json
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from drill import events
from components.remote import facts
from components.remote.resources import HEARTBEAT_PIDFILE
from components.render.agent import SCRIPT_PATH
from drill.hosts import end_process

DEFAULT_BOUND = 300.0       # the tutorial's requirement: the service back within five minutes
PROBE_INTERVAL = 0.1
ALERT_WAIT = 20.0           # seconds after recovery to wait for the e-mail and the SMS to show up
MIN_WATCH = 10.0            # seconds at least to watch the returned node not taking the IP back


@dataclass
class Report:
    stack: str
    failover_ip: str
    crashed: str = ""
    survivor: str = ""
    crash_at: float = 0.0
    crash_kind: str = "link down, Heartbeat killed"
    moments: Dict[str, float] = field(default_factory=dict)     # event -> epoch
    details: Dict[str, str] = field(default_factory=dict)
    interruption: Optional[float] = None
    move_delay: Optional[float] = None
    move_calls: Optional[int] = None
    lost_probes: int = 0
    lost_after_return: Optional[int] = None
    data: Optional[dict] = None     # the writer's verdict (VM lab): acknowledged records found on the survivor
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def split(self) -> Dict[str, Optional[float]]:
        """The interruption in its parts: detection, takeover until the move request, OVH move, the rest."""
        m = self.moments
        out: Dict[str, Optional[float]] = {}

        def span(a: str, b: str) -> Optional[float]:
            return round(m[b] - m[a], 3) if a in m and b in m else None

        out["detection"] = span("last_answer" if "last_answer" in m else "crash", "peer_dead")
        start_of_move = "move_requested" if "move_requested" in m else "no_move"
        out["takeover_to_move"] = span("peer_dead", start_of_move)
        out["ovh_move"] = span("move_requested", "move_done")
        end_of_move = "move_done" if "move_done" in m else start_of_move
        out["ip_up_to_answer"] = span(end_of_move, "first_answer")
        if "drbd_start" in m:
            # the storage steps of the group (VM lab): DRBD promotion, then the mount
            out["drbd_promotion"] = span("drbd_start", "fs_start")
            out["mount"] = span("fs_start", "ip_start")
            out["ip_up"] = span("crash", "ip_up")
            out["total"] = span("crash", "ready")
        return out

    def to_json(self) -> dict:
        return {"stack": self.stack, "failoverIp": self.failover_ip, "crashed": self.crashed,
                "survivor": self.survivor, "crashAt": self.crash_at, "crashKind": self.crash_kind,
                "moments": {k: round(v - self.crash_at, 3) for k, v in self.moments.items()},
                "details": self.details, "interruption": self.interruption, "moveDelay": self.move_delay,
                "split": self.split, "moveCalls": self.move_calls, "lostProbes": self.lost_probes,
                "lostAfterReturn": self.lost_after_return, "data": self.data, "problems": self.problems,
                "notes": self.notes, "passed": self.passed}


ORDER = [
    ("crash", "{crashed} crashed ({how})"),
    ("last_answer", "last answer from {ip}"),
    ("peer_dead", "{survivor}: peer {crashed} declared dead"),
    ("takeover", "{survivor}: takeover started"),
    ("drbd_start", "{survivor}: DRBD promotion started (drbddisk)"),
    ("fs_start", "{survivor}: DRBD Primary; mounting the filesystem"),
    ("ip_start", "{survivor}: filesystem mounted; failover IP resource starting"),
    ("move_requested", "{survivor}: OVH move requested"),
    ("no_move", "{survivor}: already routed here, no OVH move"),
    ("move_done", "OVH move task done"),
    ("ip_up", "{survivor}: failover IP up"),
    ("first_answer", "first answer again from {ip}"),
    ("ready", "{survivor} serves: DRBD Primary, filesystem mounted, failover IP up and routed to it"),
    ("mail_sent", "{survivor}: alert e-mail handed to the mail command"),
    ("mail_received", "alert e-mail received"),
    ("sms_sent", "{survivor}: SMS alert sent"),
    ("sms_received", "SMS job recorded by OVH"),
    ("restored", "{crashed} back: link up, Heartbeat started"),
    ("peer_back", "{survivor}: sees {crashed} again"),
]


def timeline(report: Report) -> List[str]:
    lines = []
    names = {"crashed": report.crashed, "survivor": report.survivor, "ip": report.failover_ip,
             "how": report.crash_kind}
    for key, label in sorted(ORDER, key=lambda item: report.moments.get(item[0], float("inf"))):
        if key in report.moments:
            detail = report.details.get(key)
            text = label.format(**names) + (f" ({detail})" if detail else "")
            lines.append(f"  {report.moments[key] - report.crash_at:+9.3f} s  {text}")
    return lines


class Drill:
    def __init__(self, spec, hosts, stack: str, bound: float = DEFAULT_BOUND, emulator: Optional[str] = None,
                 mail_messages=None, keep_stale_address: bool = False, watch: Optional[float] = None,
                 data_check=None, say=print):
        self.spec = spec
        self.hosts = hosts
        self.bound = bound
        self.emulator = emulator          # the lab's OVH API emulator URL (http://127.0.0.1:18080/1.0), or None
        self.mail_messages = mail_messages  # callable -> list of received messages (the lab's mail sink)
        self.keep_stale_address = keep_stale_address
        self.say = say
        hb = spec.heartbeat
        self.watch = watch if watch is not None else max(MIN_WATCH, 3 * hb.deadtime_ms / 1000.0)
        self.cidr = spec.failover_ip.cidr
        self.report = Report(stack=stack, failover_ip=spec.failover_ip.address,
                             crash_kind=getattr(hosts, "crash_kind", Report.crash_kind))
        self.probes: List[dict] = []
        self._probe_proc: Optional[subprocess.Popen] = None
        self.probing = True                 # False where nothing outside can probe the IP (the VM lab)
        self.data_check = data_check        # drill.data.DataCheck: a writer on the DRBD filesystem, or None

    # ------------------------------------------------------------------------------------------ reading

    def _fact(self, node: str, fact: str, *args):
        status, text = self.hosts.run(node, facts.command_for(fact, *args), timeout=20)
        return facts.parse(fact, status, text.splitlines())

    def holds(self, node: str) -> bool:
        try:
            return self._fact(node, "group", SCRIPT_PATH, self.cidr, self.spec.node(node).interface)["holds"]
        except Exception:  # a crashed node does not answer: it holds nothing anyone can reach
            return False

    def holders(self) -> Dict[str, bool]:
        return {node.name: self.holds(node.name) for node in self.spec.nodes}

    def heartbeat_running(self, node: str) -> bool:
        return self._fact(node, "service", "heartbeat", HEARTBEAT_PIDFILE)["running"]

    def _lab_get(self, path: str):
        with urllib.request.urlopen(self.emulator + path, timeout=10) as answer:
            return json.loads(answer.read().decode())

    def serving(self, node: str) -> bool:
        """The node holds the group: the failover IP (its resource script's status) and, with DRBD, the
        device Primary and mounted; in the lab, OVH also routes the IP to it."""
        if not self.holds(node):       # this node only: the other may be the one that just crashed
            return False
        drbd = self.spec.drbd
        if drbd.enabled:
            fact = self._fact(node, "drbd", drbd.resource, drbd.device)
            if fact.get("role") != "Primary" or not fact.get("mounted"):
                return False
        if self.emulator:
            routed = self._lab_get("/lab/state")["failoverIps"][self.cidr]["routedTo"]
            if routed != self.spec.node(node).service:
                return False
        return True

    def _start_probe(self, duration: float) -> None:
        argv = self.hosts.probe_command(self.spec.failover_ip.address, PROBE_INTERVAL, duration)
        if argv is None:
            self.probing = False
            return
        self._probe_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                            stdin=subprocess.DEVNULL, text=True, bufsize=1)

        def read():
            for line in self._probe_proc.stdout:
                try:
                    self.probes.append(json.loads(line))
                except ValueError:
                    pass
        threading.Thread(target=read, daemon=True).start()

    def _stop_probe(self) -> None:
        if self._probe_proc is not None:
            end_process(self._probe_proc)

    def _answered_in_a_row(self, count: int) -> bool:
        recent = sorted(self.probes, key=lambda p: p["sent"])[-count:]
        return len(recent) == count and all(p["answered"] for p in recent)

    def _gap(self, since: float) -> Tuple[Optional[dict], Optional[dict], int]:
        """(last probe answered before the outage, first answered after it, probes lost) among probes sent
        after `since` (and the last answered one before)."""
        ordered = sorted(self.probes, key=lambda p: p["sent"])
        last_before, first_after, lost, in_gap = None, None, 0, False
        for probe in ordered:
            if probe["answered"] is None and probe["sent"] >= since - 0.2:
                in_gap = True
                lost += 1
            elif probe["answered"] is not None:
                if in_gap and probe["sent"] >= since:
                    first_after = probe
                    break
                if not in_gap:
                    last_before = probe
        return last_before, first_after, lost

    # ------------------------------------------------------------------------------------------ the drill

    def run(self) -> Report:
        r = self.report
        try:
            self._run()
        finally:
            self._stop_probe()
            for follower in getattr(self, "_followers", []):
                follower.stop()
        return r

    def _fail(self, problem: str) -> None:
        self.report.problems.append(problem)
        self.say(f"drill: FAIL: {problem}")

    def _run(self) -> None:
        r, spec = self.report, self.spec
        held = self.holders()
        holding = [n for n, h in held.items() if h]
        if len(holding) == 2:
            return self._fail(f"split brain before the drill: both {' and '.join(holding)} hold {self.cidr}")
        if not holding:
            return self._fail(f"nobody holds {self.cidr} before the drill: is the cluster deployed and Heartbeat "
                              "running (make up)?")
        active = holding[0]
        survivor = spec.peer(active).name
        r.crashed, r.survivor = active, survivor
        for node in (active, survivor):
            try:
                running = self.heartbeat_running(node)
            except Exception as err:
                return self._fail(f"cannot read Heartbeat's state on {node}: {err}")
            if not running:
                return self._fail(f"Heartbeat is not running on {node}: nothing would take over")
        if self.emulator:
            state = self._lab_get("/lab/state")
            r.move_delay = float(state["settings"]["moveDelay"])
            routed = state["failoverIps"][self.cidr]["routedTo"]
            if routed != spec.node(active).service:
                return self._fail(f"OVH routes {self.cidr} to {routed}, but {active} holds it: fix the routing first")
        hb = spec.heartbeat
        logs = [p for p in (hb.log_file, "/var/log/ovh-ha/failover-ip.log") if p]
        self.say(f"drill: {active} holds {r.failover_ip}; crashing it, {survivor} should take over "
                 f"(deadtime {hb.deadtime_ms / 1000:g} s, bound {self.bound:g} s"
                 + (f", OVH move delay {r.move_delay:g} s" if r.move_delay is not None else "") + ")")
        self._followers = [self.hosts.follow(survivor, logs)]
        self._start_probe(self.bound + self.watch + 120)
        if self.probing:
            deadline = time.monotonic() + 15
            while not self._answered_in_a_row(5):
                if time.monotonic() > deadline or (self._probe_proc.poll() is not None):
                    return self._fail(f"{r.failover_ip} does not answer probes from outside before the crash")
                time.sleep(0.1)
        elif not self.serving(active):
            return self._fail(f"{active} holds {self.cidr} but does not serve (DRBD Primary and mounted, routed "
                              f"to it) before the crash")
        if self.data_check is not None:
            self.data_check.start(active)

        r.crash_at = time.time()
        r.moments["crash"] = r.crash_at
        self.hosts.crash(active, spec.node(active).interface)
        if not self.probing:
            return self._recover_unprobed(active, survivor)

        # until a probe answers again and the survivor holds the IP, within the bound
        deadline = time.monotonic() + self.bound
        recovered = False
        while time.monotonic() < deadline:
            _, first_after, _ = self._gap(r.crash_at)
            if first_after is not None:
                held = self.holders()
                if held[active] and held[survivor]:
                    self._fail(f"split brain: both {active} and {survivor} hold {self.cidr}")
                if held[survivor]:
                    recovered = True
                    break
            time.sleep(0.2)
        last_before, first_after, lost = self._gap(r.crash_at)
        r.lost_probes = lost
        if last_before:
            r.moments["last_answer"] = last_before["answered"]
        if not recovered:
            self._collect_events(survivor)
            return self._fail(f"the service did not come back within the bound of {self.bound:g} s")
        r.moments["first_answer"] = first_after["answered"]
        r.interruption = round(first_after["answered"] - last_before["answered"], 3) if last_before else None

        self._settle(active, survivor)

    def _settle(self, active: str, survivor: str) -> None:
        """After the service is back: the alerts, the lab's routing, then the crashed node brought back."""
        self._wait_alerts(survivor)
        self._collect_events(survivor)
        if self.emulator:
            self._check_lab_routing(active, survivor)
        self._bring_back(active, survivor)
        self._collect_events(survivor)

    def _recover_unprobed(self, active: str, survivor: str) -> None:
        """No probe from outside: the service is back when the survivor serves (see `serving`)."""
        r = self.report
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            try:
                if self.serving(survivor):
                    r.moments["ready"] = time.time()
                    break
            except Exception as err:  # a slow answer under load: ask again until the bound
                r.notes.append(f"reading {survivor}'s state failed once: {err}")
            time.sleep(0.2)
        else:
            self._collect_events(survivor)
            return self._fail(f"{survivor} did not serve within the bound of {self.bound:g} s")
        r.interruption = round(r.moments["ready"] - r.crash_at, 3)
        if self.data_check is not None:
            r.data = self.data_check.verify(survivor)
            if not r.data.get("ok"):
                self._fail(f"data check on {survivor}: {self.data_check.summary(r.data)}")
        self._settle(active, survivor)

    def _wait_alerts(self, survivor: str) -> None:
        r = self.report
        want_mail = bool(self.mail_messages and self.spec.alerts.emails)
        want_sms = bool(self.emulator and self.spec.alerts.sms.enabled)
        mail = sms = None
        deadline = time.monotonic() + ALERT_WAIT
        while True:
            mail = self._mail(survivor) if want_mail and mail is None else mail
            sms = self._sms(survivor) if want_sms and sms is None else sms
            if (mail or not want_mail) and (sms or not want_sms) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if want_mail and mail is None:
            self._fail(f"no alert e-mail naming {survivor} reached the mail sink within {ALERT_WAIT:g} s")
        elif want_mail:
            r.moments["mail_received"] = mail["_at"]
            r.details["mail_received"] = f"to {', '.join(mail.get('rcptTos', []))}: {mail.get('subject', '')}"
        if want_sms and sms is None:
            self._fail(f"no SMS job naming {survivor} was recorded within {ALERT_WAIT:g} s")
        elif want_sms:
            r.moments["sms_received"] = sms["_at"]
            r.details["sms_received"] = f"to {sms.get('receiver')}: {sms.get('message')}"

    def _mail(self, survivor: str) -> Optional[dict]:
        import datetime
        for message in self.mail_messages():
            when = datetime.datetime.fromisoformat(message["received"].replace("Z", "+00:00")).timestamp()
            if when >= self.report.crash_at and survivor in (message.get("subject") or ""):
                return dict(message, _at=when)
        return None

    def _sms(self, survivor: str) -> Optional[dict]:
        import datetime
        for job in self._lab_get("/lab/sms"):
            # the emulator's exact clock; the API's creationDatetime has one-second resolution
            when = job.get("labCreatedAt") or datetime.datetime.fromisoformat(job["creationDatetime"]).timestamp()
            if when >= int(self.report.crash_at) and (job.get("message") or "").startswith(survivor + " "):
                return dict(job, _at=when)
        return None

    def _collect_events(self, survivor: str) -> None:
        r = self.report
        crashed = r.crashed
        for follower in self._followers:
            for arrived, line in list(follower.lines):
                found = events.parse(line, peer=crashed)
                if not found:
                    continue
                name, detail = found
                if name == "release" and arrived >= r.crash_at:
                    self._fail(f"{survivor} gave its resources up during the drill: {line.strip()}")
                    continue
                when = events.stamp(line) or arrived
                if name == "peer_back" and when < r.moments.get("restored", float("inf")):
                    continue  # the peer seen before it was brought back: an older line
                if name not in r.moments and when >= r.crash_at - 0.5:
                    r.moments[name] = when
                    if detail:
                        r.details[name] = detail

    def _check_lab_routing(self, crashed: str, survivor: str) -> None:
        r, spec = self.report, self.spec
        state = self._lab_get("/lab/state")
        routed = state["failoverIps"][self.cidr]["routedTo"]
        if routed != spec.node(survivor).service:
            self._fail(f"after the failover OVH routes {self.cidr} to {routed}, not to {survivor}")
        calls = [c for c in self._lab_get("/lab/calls")
                 if c.get("method") == "POST" and c.get("path", "").split("?")[0].endswith("/move")
                 and c.get("epoch", 0) >= r.crash_at]
        r.move_calls = len(calls)
        done = [t for t in state["tasks"] if t.get("labDoneAt") and t["labDoneAt"] >= r.crash_at
                and t.get("status") == "done"]
        if len(calls) != 1 or len(done) != 1:
            self._fail(f"expected one OVH move call and one move task for the failover, saw {len(calls)} call(s) "
                       f"and {len(done)} completed task(s)")
        if done:
            # the emulator's own clock for the task, more exact than the script's poll
            r.moments["move_done"] = done[0]["labDoneAt"]
            r.details["move_done"] = f"task {done[0]['taskId']}, to {done[0]['destination']['serviceName']}"

    def _bring_back(self, crashed: str, survivor: str) -> None:
        r, spec = self.report, self.spec
        node = spec.node(crashed)
        self.hosts.restore(crashed, node.interface, self.cidr, self.keep_stale_address)
        r.moments["restored"] = time.time()
        hb = spec.heartbeat
        deadline = time.monotonic() + hb.initdead_ms / 1000.0 + hb.deadtime_ms / 1000.0 + 30
        while time.monotonic() < deadline:
            self._collect_events(survivor)
            if "peer_back" in r.moments:
                break
            time.sleep(0.2)
        else:
            r.notes.append(f"{survivor}'s log did not report {crashed} back within the wait")
        before = len([p for p in self.probes if p["answered"] is None])
        end = time.monotonic() + self.watch
        while time.monotonic() < end:
            held = self.holders()
            if held[crashed] and held[survivor]:
                return self._fail(f"split brain after {crashed} came back: both nodes hold {self.cidr}")
            if held[crashed]:
                return self._fail(f"{crashed} took {self.cidr} back after it returned (auto_failback is off)")
            if not held[survivor]:
                return self._fail(f"{survivor} lost {self.cidr} after {crashed} returned")
            time.sleep(0.5)
        if self.probing:
            time.sleep(1.5)  # let the last probes of the window be answered or time out
            r.lost_after_return = len([p for p in self.probes if p["answered"] is None]) - before
        r.notes.append(f"watched {self.watch:g} s after {crashed} returned: {self.cidr} stayed on {survivor}")
