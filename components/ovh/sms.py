"""SMS alerts through the OVH SMS API (POST /sms/{service}/jobs).

A send that fails with a server error is sent again: for an alert, a rare duplicate beats a lost one.
"""
import urllib.parse
from typing import Any, Dict, Optional, Sequence

import ovh

from components.ovh.client import Retry, resilient_call
from components.ovh.errors import OvhConfigError


def job_body(message: str, receivers: Sequence[str], sender: Optional[str] = None) -> Dict[str, Any]:
    """The job as the API takes it. Without a sender the API answers from a short number, which it only
    allows with senderForResponse."""
    if not message:
        raise OvhConfigError("SMS message: expected a non-empty text")
    if not receivers:
        raise OvhConfigError("alerts.sms.recipients: expected at least one number in international format (+33...)")
    body: Dict[str, Any] = {"message": message, "receivers": list(receivers), "noStopClause": True,
                            "priority": "high"}
    if sender:
        body.update(sender=sender, senderForResponse=False)
    else:
        body["senderForResponse"] = True
    return body


def send_sms(client: ovh.Client, service: str, message: str, receivers: Sequence[str],
             sender: Optional[str] = None, retry: Retry = Retry(attempts=3)) -> Dict[str, Any]:
    """Send one SMS to each receiver; returns the API's answer (ids, validReceivers, invalidReceivers)."""
    path = f"/sms/{urllib.parse.quote(service, safe='')}/jobs"
    return resilient_call(client, "POST", path, job_body(message, receivers, sender), retry=retry)
