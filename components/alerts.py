"""Who hears about a failover: e-mail through Heartbeat's MailTo, SMS through the OVH SMS API."""
from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class AlertsArgs:
    spec: object  # components.spec.ClusterSpec


class Alerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ovh-ha:alerts:Alerts", name, None, opts)
        alerts = args.spec.alerts
        self.emails = list(alerts.emails)
        self.sms_recipients = list(alerts.sms.recipients) if alerts.sms and alerts.sms.enabled else []
        self.register_outputs({"emails": self.emails, "smsRecipients": self.sms_recipients})
