"""The legacy SOAP API ("soapi") behind POST /soapi, speaking the shipped WSDL (components/ovh/soapi.wsdl).

A failover update through SOAP creates the same move task as POST /ip/{ip}/move, so routing, delays, task
faults and the refusal of a second pending move behave alike in both APIs.
"""
import ipaddress
import os
import secrets
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from lab.ovh_emulator.state import AccountState, ApiError

NS = "urn:ovh-ha-cluster:soapi"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "components", "ovh", "soapi.wsdl")


class SoapFault(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def wsdl(location: str) -> bytes:
    """The shipped WSDL with its service address pointing at this emulator."""
    with open(WSDL_PATH, encoding="utf-8") as fh:
        text = fh.read()
    return text.replace('location="http://127.0.0.1/soapi"', f'location="{location}"').encode("utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes) -> Tuple[str, Dict[str, str]]:
    """(operation, {argument: text}) of a SOAP request."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise SoapFault("Client", f"malformed SOAP request: {err}")
    bodies = [el for el in root if _local(el.tag) == "Body"]
    if _local(root.tag) != "Envelope" or not bodies or len(bodies[0]) == 0:
        raise SoapFault("Client", "not a SOAP envelope with a body")
    call = bodies[0][0]
    return _local(call.tag), {_local(arg.tag): (arg.text or "") for arg in call}


def envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{ENV}" xmlns:tns="{NS}"><soapenv:Body>{inner}'
            f'</soapenv:Body></soapenv:Envelope>').encode("utf-8")


def fault_envelope(fault: SoapFault) -> bytes:
    return envelope(f"<soapenv:Fault><faultcode>soapenv:{fault.code}</faultcode>"
                    f"<faultstring>{_escape(fault.message)}</faultstring></soapenv:Fault>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SoapApi:
    def __init__(self, state: AccountState):
        self.state = state
        self.sessions: Dict[str, str] = {}

    def call(self, operation: str, args: Dict[str, str]) -> bytes:
        handler = {"login": self.login, "logout": self.logout,
                   "dedicatedFailoverUpdate": self.failover_update,
                   "dedicatedFailoverList": self.failover_list}.get(operation)
        if handler is None:
            raise SoapFault("Client", f"unknown operation {operation}")
        return envelope(handler(args))

    def _session(self, args: Dict[str, str]) -> str:
        nic = self.sessions.get(args.get("session", ""))
        if nic is None:
            raise SoapFault("Client", "invalid session")
        return nic

    def login(self, args: Dict[str, str]) -> str:
        accounts = self.state.data.get("soapi", {}).get("accounts", {})
        account = accounts.get(args.get("nic", ""))
        if account is None or not secrets.compare_digest(str(account.get("password", "")),
                                                          args.get("password", "")):
            raise SoapFault("Client", "Login failed: bad nic or password")
        session = secrets.token_hex(16)
        self.sessions[session] = args["nic"]
        return f"<tns:loginResponse><tns:return>{session}</tns:return></tns:loginResponse>"

    def logout(self, args: Dict[str, str]) -> str:
        self._session(args)
        self.sessions.pop(args["session"], None)
        return "<tns:logoutResponse/>"

    def _dedicated(self, args: Dict[str, str]) -> str:
        dedicated = args.get("dedicated", "")
        if dedicated not in self.state.data["services"]:
            raise SoapFault("Client", f"unknown dedicated server {dedicated}")
        return dedicated

    def failover_update(self, args: Dict[str, str]) -> str:
        self._session(args)
        self._dedicated(args)
        target = self.state.service_by_address(args.get("routedTo", ""))
        if target is None:
            raise SoapFault("Client", f"{args.get('routedTo')} is not the address of one of your servers")
        try:
            self.state.move(args.get("ip", ""), target)
        except ApiError as err:
            raise SoapFault("Server" if err.status >= 500 else "Client", err.body["message"])
        return "<tns:dedicatedFailoverUpdateResponse/>"

    def failover_list(self, args: Dict[str, str]) -> str:
        self._session(args)
        self._dedicated(args)
        with self.state.lock:
            self.state.settle()
            items: List[str] = []
            for name, entry in sorted(self.state.data["failoverIps"].items()):
                service = self.state.data["services"].get(entry.get("routedTo"), {})
                address = str(ipaddress.ip_network(name).network_address) if name.endswith("/32") else name
                items.append(f"<tns:return><tns:ip>{address}</tns:ip>"
                             f"<tns:routedTo>{service.get('ip', '')}</tns:routedTo></tns:return>")
        return "<tns:dedicatedFailoverListResponse>" + "".join(items) + "</tns:dedicatedFailoverListResponse>"


def redacted(operation: str, args: Dict[str, str]) -> Dict[str, Optional[str]]:
    """What the call log keeps of a SOAP call: never the password nor the session token."""
    kept = {k: v for k, v in args.items() if k not in ("password", "session")}
    return {"operation": operation, **kept}
