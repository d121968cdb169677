"""The lab's mail: the sink's store (data-driven cases in mail_cases/), the sink as a service on a port and
state dir of its own, the hosts' msmtp configuration, and real alerts from the netns hosts (`mail` and
Heartbeat's MailTo) arriving in the sink on 127.0.0.1:2525.

A new store case is a new mail_cases/NAME.json: {description, envelope: {mailFrom, rcptTos, peer, helo},
raw_lines (joined with CRLF, as SMTP delivers) or raw_base64, expect: {index field: value}}.
"""
import base64
import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

import lab.mail_sink as mail
from lab.mail_sink.store import Store
from lab.netlab import hostmail, procs, topology
from lab.netlab.state import state_dir
from tests.support.lab import REPO

CASES = sorted((Path(__file__).parent / "mail_cases").glob("*.json"))
RECEIVED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SYSTEM_PYTHON = "/usr/bin/python3"
ALERT_TO = "ops@lab.example"
MAILTO = "/etc/ha.d/resource.d/MailTo"
MAILTO_SUBJECT = "ovh-ha-cluster_failover"      # what the lab stack's haresources gives MailTo
WAIT = 15.0                                     # seconds a message may take to arrive in the sink


def raw_of(case: dict) -> bytes:
    if "raw_base64" in case:
        return base64.b64decode(case["raw_base64"])
    return ("\r\n".join(case["raw_lines"]) + "\r\n").encode("utf-8")


def index_lines(directory: Path) -> list:
    return [json.loads(line) for line in (directory / "index.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ the store
@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_store_case(case_file, tmp_path):
    case = json.loads(case_file.read_text())
    env, raw = case["envelope"], raw_of(case)
    store = Store(tmp_path / "mail")
    entry = store.add(raw, env["peer"], env["mailFrom"], env["rcptTos"], helo=env["helo"])

    written = index_lines(store.dir)
    assert written == [entry]
    assert (entry["id"], entry["file"], entry["size"]) == (1, "0001.eml", len(raw))
    assert RECEIVED.match(entry["received"]), entry["received"]
    assert (entry["peer"], entry["heloName"], entry["mailFrom"], entry["rcptTos"]) == \
        (env["peer"], env["helo"], env["mailFrom"], env["rcptTos"])
    for field, value in case["expect"].items():
        assert entry[field] == value, f"{case_file.name}: {field}"
    assert (store.dir / "0001.eml").read_bytes() == raw
    assert mail.messages(tmp_path) == [entry]
    assert mail.raw_message(entry, tmp_path) == raw
    assert os.stat(store.dir).st_mode & 0o777 == 0o700
    for name in ("0001.eml", "index.jsonl"):
        assert os.stat(store.dir / name).st_mode & 0o777 == 0o600, name


def test_store_numbering_continues_after_a_restart_and_never_overwrites(tmp_path):
    first = Store(tmp_path / "mail")
    for n in (1, 2):
        first.add(f"Subject: m{n}\r\n\r\nx\r\n".encode(), None, "a@b", ["c@d"])
    restarted = Store(tmp_path / "mail")           # a new sink process on the same directory
    assert restarted.add(b"Subject: m3\r\n\r\nx\r\n", None, "a@b", ["c@d"])["file"] == "0003.eml"
    (tmp_path / "mail" / "0001.eml").unlink()      # a gap below the highest number changes nothing
    assert restarted.add(b"Subject: m4\r\n\r\nx\r\n", None, "a@b", ["c@d"])["id"] == 4
    assert [e["subject"] for e in mail.messages(tmp_path)] == ["m1", "m2", "m3", "m4"]
    assert (tmp_path / "mail" / "0002.eml").read_bytes() == b"Subject: m2\r\n\r\nx\r\n"

    assert restarted.clear() == 3
    assert mail.messages(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "mail").iterdir() if not p.name.startswith(".")) == []
    assert restarted.add(b"Subject: again\r\n\r\n", None, "a@b", ["c@d"])["file"] == "0001.eml"


def test_messages_skips_a_line_cut_short(tmp_path):
    store = Store(tmp_path / "mail")
    store.add(b"Subject: whole\r\n\r\n", None, "a@b", ["c@d"])
    with open(store.index, "a") as fh:
        fh.write('{"id": 2, "subj')               # what a sink killed in the middle of a write leaves
    assert [m["subject"] for m in mail.messages(tmp_path)] == ["whole"]


def test_messages_default_state_dir_is_the_labs(monkeypatch):
    monkeypatch.setenv("LAB_STATE", "/srv/no-such-lab-state")
    assert mail.mail_dir() == Path("/srv/no-such-lab-state/mail") == state_dir() / "mail"
    assert mail.messages() == []
    monkeypatch.delenv("LAB_STATE")
    assert mail.mail_dir() == REPO / ".lab" / "mail"


def test_wait_for_names_what_arrived_when_nothing_matches(tmp_path):
    Store(tmp_path / "mail").add(b"Subject: other\r\n\r\n", None, "a@b", ["c@d"])
    with pytest.raises(TimeoutError, match="'other'"):
        mail.wait_for(lambda m: m["subject"] == "wanted", timeout=0.3, state_dir=tmp_path)
    with pytest.raises(TimeoutError, match="new ones: none"):
        mail.wait_for(lambda m: True, timeout=0.2, state_dir=tmp_path, ignore=[1])


# --------------------------------------------------------------------------------- the hosts' msmtp setup
def config_lines(text: str) -> list:
    return [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", [h.name for h in topology.HOSTS])
def test_msmtprc_relays_to_the_sink_without_secrets(name):
    lines = config_lines(hostmail.msmtprc(name))
    settings = {key: value for key, value in (line for line in lines if len(line) == 2)}
    assert settings["host"] == "127.0.0.1" and settings["port"] == str(topology.MAIL_SINK_PORT)
    assert (settings["auth"], settings["tls"]) == ("off", "off")
    assert settings["from"] == f"%U@{name}" and settings["domain"] == name
    assert settings["logfile"].startswith("/var/log/")
    assert settings["account"] == "default : lab-sink"
    assert not {"password", "passwordeval", "user"} & set(settings)


def test_the_sink_port_is_forwarded_to_the_hosts_by_default():
    assert topology.MAIL_SINK_PORT == 2525
    assert topology.MAIL_SINK_PORT in topology.machine_ports({})
    assert topology.machine_ports({"LAB_MACHINE_PORTS": "18080"}) == [18080]


def test_sendmail_that_is_msmtp_is_fine(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "msmtp").write_text("")
    (tmp_path / "sendmail").symlink_to(tmp_path / "bin" / "msmtp")
    assert hostmail.sendmail_problem(tmp_path / "sendmail") is None
    assert hostmail.problems([18080, 2525], tmp_path / "sendmail") == []


def test_another_mta_or_none_is_reported(tmp_path):
    (tmp_path / "exim4").write_text("")
    (tmp_path / "sendmail").symlink_to(tmp_path / "exim4")
    problem = hostmail.sendmail_problem(tmp_path / "sendmail")
    assert f"is {tmp_path / 'exim4'}, not msmtp" in problem and "will not reach the mail sink" in problem
    missing = hostmail.sendmail_problem(tmp_path / "no-sendmail")
    assert "does not exist" in missing and "will not reach the mail sink" in missing
    unforwarded = hostmail.problems([18080], tmp_path / "no-sendmail")
    assert len(unforwarded) == 2 and "does not forward 2525" in unforwarded[1]


# ------------------------------------------------------------------------------- the service, on its own
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_cli(*args, state, python=sys.executable, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "lab.mail_sink", *args, "--state-dir", str(state)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def send(port: int, subject: str, mail_from: str = "tester@example.org", rcpts=("ops@lab.example",),
         body: str = "hello") -> None:
    message = f"Subject: {subject}\r\nFrom: {mail_from}\r\n\r\n{body}\r\n".encode()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="tester", timeout=10) as client:
        client.sendmail(mail_from, list(rcpts), message)


@pytest.fixture
def own_sink(tmp_path):
    """A sink of the test's own (state dir and port), stopped at the end whatever happened."""
    state, port = tmp_path / "state", free_port()
    yield state, port
    sink_cli("down", state=state)


def test_service_up_is_idempotent_and_status_tells(own_sink):
    state, port = own_sink
    assert sink_cli("status", state=state).returncode == 3
    first = sink_cli("up", "--port", str(port), state=state)
    assert first.returncode == 0, first.stderr
    record = json.loads((state / "mail" / "sink.json").read_text())
    assert os.stat(state / "mail" / "sink.json").st_mode & 0o777 == 0o600
    assert os.stat(state / "mail").st_mode & 0o777 == 0o700
    assert procs.start_time(record["pid"]) == record["startTime"] and record["port"] == port
    assert os.getsid(record["pid"]) == record["pid"], "the sink runs in a session of its own"

    again = sink_cli("up", "--port", str(port), state=state)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout + again.stderr
    assert json.loads((state / "mail" / "sink.json").read_text())["pid"] == record["pid"]
    status = sink_cli("status", state=state)
    assert status.returncode == 0 and f"pid {record['pid']}" in status.stdout and "answering" in status.stdout

    assert "stopped" in sink_cli("down", state=state).stdout
    assert not procs.alive({"pid": record["pid"], "start": record["startTime"]})   # gone, or a zombie being reaped
    assert sink_cli("status", state=state).returncode == 3
    second = sink_cli("down", state=state)
    assert second.returncode == 0 and "not running" in second.stdout


def test_service_keeps_what_it_receives_and_lists_it(own_sink):
    state, port = own_sink
    assert sink_cli("up", "--port", str(port), state=state).returncode == 0
    send(port, "first", rcpts=("ops@lab.example", "second@lab.example"))
    send(port, "bounce", mail_from="")   # a null sender (MAIL FROM:<>) is accepted too
    mail.wait_for(lambda m: m["subject"] == "bounce", timeout=WAIT, state_dir=state)
    entries = mail.messages(state)
    assert [(e["file"], e["subject"], e["mailFrom"]) for e in entries] == \
        [("0001.eml", "first", "tester@example.org"), ("0002.eml", "bounce", "<>")]
    assert entries[0]["rcptTos"] == ["ops@lab.example", "second@lab.example"]
    assert entries[0]["heloName"] == "tester" and entries[0]["peer"].startswith("127.0.0.1:")

    listed = sink_cli("list", "--json", state=state)
    assert listed.returncode == 0 and json.loads(listed.stdout) == index_lines(state / "mail")
    text = sink_cli("list", state=state).stdout.splitlines()
    assert len(text) == 2 and text[0].startswith("0001.eml") and "'first'" in text[0]

    # numbering continues across a restart of the service
    assert sink_cli("down", state=state).returncode == 0
    assert sink_cli("up", "--port", str(port), state=state).returncode == 0
    send(port, "after restart")
    assert mail.wait_for(lambda m: m["subject"] == "after restart", timeout=WAIT, state_dir=state)["file"] == "0003.eml"

    cleared = sink_cli("clear", state=state)
    assert cleared.returncode == 0 and "removed 3 messages" in cleared.stdout
    assert mail.messages(state) == [] and sink_cli("status", state=state).returncode == 0


def test_down_signals_only_the_process_it_started(own_sink):
    state, port = own_sink
    (state / "mail").mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        started = procs.start_time(bystander.pid)
        for record in ({"pid": bystander.pid, "startTime": started + 1, "port": port},   # PID reused since
                       {"pid": bystander.pid, "startTime": started, "port": port}):     # not the sink at all
            (state / "mail" / "sink.json").write_text(json.dumps(record))
            result = sink_cli("down", state=state)
            assert result.returncode == 0 and "nothing killed" in result.stdout, result.stdout
            assert bystander.poll() is None and procs.start_time(bystander.pid) == started
            assert not (state / "mail" / "sink.json").exists()
        assert sink_cli("status", state=state).returncode == 3
    finally:
        bystander.kill()
        bystander.wait(timeout=10)

    # another lab's sink (another state dir) is not this one's to stop
    other_state = state.parent / "other-state"
    assert sink_cli("up", "--port", str(port), state=state).returncode == 0
    try:
        assert "not running" in sink_cli("down", state=other_state).stdout
        assert sink_cli("status", state=state).returncode == 0
    finally:
        sink_cli("down", state=state)


def test_up_refuses_a_port_someone_else_listens_on(own_sink):
    state, port = own_sink
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        result = sink_cli("up", "--port", str(port), state=state)
    assert result.returncode == 1 and f"127.0.0.1:{port}" in result.stderr, result.stderr
    assert not (state / "mail" / "sink.json").exists()


def test_down_status_list_work_without_aiosmtpd(own_sink):
    """`make lab-down` runs `python3 -m lab.mail_sink down` with the system Python."""
    state, port = own_sink
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"no {SYSTEM_PYTHON} on this machine")
    if subprocess.run([SYSTEM_PYTHON, "-c", "import aiosmtpd"], capture_output=True).returncode == 0:
        pytest.skip(f"{SYSTEM_PYTHON} has aiosmtpd installed: it cannot show that down works without it")
    refused = sink_cli("up", "--port", str(port), state=state, python=SYSTEM_PYTHON)
    assert refused.returncode == 1 and "no aiosmtpd" in refused.stderr and ".venv/bin/python" in refused.stderr
    assert sink_cli("up", "--port", str(port), state=state).returncode == 0
    send(port, "seen by the system python")
    assert sink_cli("status", state=state, python=SYSTEM_PYTHON).returncode == 0
    listed = sink_cli("list", "--json", state=state, python=SYSTEM_PYTHON)
    assert [m["subject"] for m in json.loads(listed.stdout)] == ["seen by the system python"]
    down = sink_cli("down", state=state, python=SYSTEM_PYTHON)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert sink_cli("status", state=state, python=SYSTEM_PYTHON).returncode == 3


# ------------------------------------------------------------------------- real alerts from the lab hosts
@pytest.fixture(scope="module")
def lab_sink(netns_lab):
    """The lab's own sink (default state dir, 127.0.0.1:2525), started if it was not running and then
    stopped again; a sink already running (`make lab-up`) is left as it is."""
    state = state_dir(netns_lab.env)
    was_running = sink_cli("status", state=state).returncode == 0
    if not was_running:
        started = sink_cli("up", state=state)
        assert started.returncode == 0, started.stdout + started.stderr
    yield state
    if not was_running:
        sink_cli("down", state=state)


def run_ok(netns_lab, host: str, *command: str) -> str:
    result = netns_lab.run(host, *command)
    assert result.returncode == 0, f"{host}: {command} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("name", [h.name for h in topology.HOSTS])
def test_up_wrote_each_hosts_msmtprc_into_its_own_etc(netns_lab, name):
    expected = hostmail.msmtprc(name)
    assert run_ok(netns_lab, name, "cat", "/etc/msmtprc") == expected
    assert run_ok(netns_lab, name, "stat", "-c", "%a %U", "/etc/msmtprc").split() == ["644", "root"]
    assert (netns_lab.layout.host_dir(name) / "etc.upper" / "msmtprc").read_text() == expected
    assert not Path("/etc/msmtprc").exists() or Path("/etc/msmtprc").read_text() != expected, \
        "the host's /etc/msmtprc must stay the host's own"


def test_up_repairs_a_changed_msmtprc_and_reports_it(netns_lab):
    run_ok(netns_lab, "ns11111", "sh", "-c", "echo 'host smtp.example.com' >> /etc/msmtprc")
    repaired = netns_lab.lab("up")
    assert repaired.returncode == 0, repaired.stderr
    assert "ns11111: wrote /etc/msmtprc" in repaired.stdout and "lab up (1 change)" in repaired.stdout, \
        repaired.stdout
    assert run_ok(netns_lab, "ns11111", "cat", "/etc/msmtprc") == hostmail.msmtprc("ns11111")
    again = netns_lab.lab("up")
    assert "lab already up: nothing changed" in again.stdout, again.stdout


def test_mail_from_a_host_arrives_in_the_sink(netns_lab, lab_sink):
    token = uuid.uuid4().hex[:12]
    subject = f"lab mail {token}"
    run_ok(netns_lab, "ns11111", "sh", "-c", f'echo "body {token}" | mail -s "{subject}" {ALERT_TO}')
    entry = mail.wait_for(lambda m: m.get("subject") == subject, timeout=WAIT, state_dir=lab_sink)
    assert (entry["mailFrom"], entry["rcptTos"], entry["heloName"]) == ("root@ns11111", [ALERT_TO], "ns11111")
    assert entry["from"] == "root@ns11111" and entry["to"] == ALERT_TO
    assert entry["bodyStart"] == [f"body {token}"]
    assert entry["date"] and entry["messageId"].endswith("@ns11111>")
    raw = mail.raw_message(entry, lab_sink).decode()
    assert "From: root@ns11111" in raw and f"Subject: {subject}" in raw
    # the host's msmtp logged the sink's answer naming this very file
    assert f"stored as {entry['file']}" in run_ok(netns_lab, "ns11111", "cat", "/var/log/msmtp.log")


def mailto(netns_lab, host: str, action: str) -> subprocess.CompletedProcess:
    """Heartbeat's own call for the haresources entry MailTo::ops@lab.example::ovh-ha-cluster_failover."""
    return netns_lab.run(host, MAILTO, ALERT_TO, MAILTO_SUBJECT, action)


def alert_time(subject: str, prefix: str, suffix: str) -> datetime:
    pattern = re.escape(prefix) + r" at (\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d) \S+ (\d{4}) " + re.escape(suffix)
    found = re.fullmatch(pattern, subject)
    assert found, f"{subject!r} does not read '{prefix} at <date> {suffix}'"
    return datetime.strptime(f"{found.group(1)} {found.group(2)}", "%a %b %d %H:%M:%S %Y")


def test_heartbeat_mailto_sends_takeover_and_release_alerts(netns_lab, lab_sink):
    host = "ns22222"
    before = {m["id"] for m in mail.messages(lab_sink)}
    try:
        started = mailto(netns_lab, host, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        takeover = mail.wait_for(lambda m: "Takeover in progress" in (m.get("subject") or ""), timeout=WAIT,
                                 state_dir=lab_sink, ignore=before)
        assert mailto(netns_lab, host, "status").stdout.split()[0] == "running"

        stopped = mailto(netns_lab, host, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        release = mail.wait_for(lambda m: "Migrating resource away" in (m.get("subject") or ""), timeout=WAIT,
                                state_dir=lab_sink, ignore=before | {takeover["id"]})
        assert mailto(netns_lab, host, "status").stdout.split()[0] == "stopped"
    finally:
        if mailto(netns_lab, host, "status").stdout.startswith("running"):
            mailto(netns_lab, host, "stop")

    for entry, words, place in ((takeover, "Takeover in progress", f"on {host}"),
                                (release, "Migrating resource away", f"from {host}")):
        assert (entry["mailFrom"], entry["rcptTos"], entry["heloName"]) == (f"root@{host}", [ALERT_TO], host)
        when = alert_time(entry["subject"], f"{MAILTO_SUBJECT} {words}", place)
        # the time in the subject is the host's clock when MailTo ran: msmtp's Date header says the same
        stamped = parsedate_to_datetime(entry["date"]).astimezone().replace(tzinfo=None)
        assert abs(stamped - when) <= timedelta(minutes=1), (entry["subject"], entry["date"])
        # `date` pads a one-digit day with a second blank ("Dec  1"); the body keeps it, the Subject header
        # arrives with its blanks folded into one
        assert entry["bodyStart"][0].split() == entry["subject"].split()
        assert "Command line was:" in [line.strip() for line in entry["bodyStart"]]
    assert takeover["id"] < release["id"]
