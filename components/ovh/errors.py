"""Errors of the OVH layer, by what the caller should do about them."""
from typing import Any, Dict, Optional


class OvhError(Exception):
    """Base: the OVH API refused or failed a request; the message says which call and why."""


class OvhConfigError(OvhError, ValueError):
    """Bad local settings (endpoint, credentials): fix the configuration, nothing was sent."""


class OvhAuthError(OvhError):
    """The API refused the credentials or the call (bad keys, revoked or unvalidated consumer key, a call
    outside the consumer key's access rules, a bad signature). Never retried: retrying cannot help and a
    burst of refused calls is what gets an application key blocked."""

    def __init__(self, message: str, error_code: Optional[str] = None):
        super().__init__(message)
        self.error_code = error_code


class OvhNotFound(OvhError):
    """The IP, task or service is not on this OVH account."""


class OvhConflict(OvhError):
    """The API refused a change that conflicts with one in progress (a move while another is pending)."""


class OvhUnavailable(OvhError):
    """The API kept failing (5xx, 429, network) until the retries or the time bound ran out."""


class OvhTaskFailed(OvhError):
    """A move task ended in a status other than done (cancelled, customerError, ovhError)."""

    def __init__(self, message: str, status: str, task: Dict[str, Any]):
        super().__init__(message)
        self.status = status
        self.task = task


class OvhTimeout(OvhError):
    """A bounded wait (pending task, move task) ran out; the task may still complete later."""

    def __init__(self, message: str, last_status: Optional[str] = None, task_id: Optional[int] = None):
        super().__init__(message)
        self.last_status = last_status
        self.task_id = task_id
