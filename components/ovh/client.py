"""A python-ovh client for an endpoint name or URL, and calls that survive a flaky API without hammering it.

python-ovh 1.2.0 only accepts the endpoint names of its `ovh.client.ENDPOINTS` table; `make_client`
registers an http(s) URL there under its own name (the library's code is used unchanged), so an emulator or
a proxy works the same way, including through an ovh.conf whose `[default] endpoint=` is that URL.

`resilient_call` retries with exponential backoff what may pass on a second try (5xx, 429, network errors,
an undecodable answer) and never what cannot (a refused credential or call, a bad request): those raise at
once. A "Query out of time" answer means our idea of the API's clock is stale: it is refreshed through
GET /auth/time and the call is sent again, once.
"""
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import ovh
import ovh.client
import ovh.config
from ovh import exceptions as ox

from components.ovh.errors import (OvhAuthError, OvhConfigError, OvhConflict, OvhError, OvhNotFound,
                                   OvhUnavailable)

DEFAULT_REQUEST_TIMEOUT = 30.0
_AUTH_EXCEPTIONS = (ox.InvalidKey, ox.InvalidCredential, ox.NotCredential, ox.NotGrantedCall, ox.Forbidden)
_AUTH_HINTS = {
    "INVALID_KEY": "the application key is unknown to the API",
    "INVALID_CREDENTIAL": "the consumer key does not exist, was revoked or belongs to another application",
    "NOT_CREDENTIAL": "the consumer key was never validated (visit its validation URL)",
    "NOT_GRANTED_CALL": "the consumer key's access rules do not cover this call",
    "INVALID_SIGNATURE": "the request signature is wrong (check the application secret)",
    "NOT_AUTHENTICATED": "no credentials were sent",
}


@dataclass(frozen=True)
class Retry:
    """Backoff for transient failures: waits initial, initial*factor, ... capped at maximum."""
    attempts: int = 5
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * (self.factor ** attempt))


def register_endpoint(endpoint: str) -> str:
    """Make python-ovh accept `endpoint` (a name or an http(s) URL); return the name to pass it."""
    if endpoint in ovh.client.ENDPOINTS:
        return endpoint
    if endpoint.startswith(("http://", "https://")) and len(endpoint) > len("https://"):
        ovh.client.ENDPOINTS[endpoint] = endpoint.rstrip("/")
        return endpoint
    raise OvhConfigError(f"ovh:endpoint {endpoint!r} is neither one of python-ovh's endpoint names "
                         f"({', '.join(sorted(ovh.client.ENDPOINTS))}) nor an http(s) URL")


def make_client(endpoint: Optional[str] = None, application_key: Optional[str] = None,
                application_secret: Optional[str] = None, consumer_key: Optional[str] = None,
                config_file: Optional[str] = None, timeout: float = DEFAULT_REQUEST_TIMEOUT) -> ovh.Client:
    """A python-ovh client. What is not given comes, as python-ovh does it, from OVH_* environment variables
    then ovh.conf (./ovh.conf, ~/.ovh.conf, /etc/ovh.conf, then `config_file`)."""
    if endpoint is None:
        configuration = ovh.config.ConfigurationManager()
        if config_file is not None:
            configuration.read(config_file)
        endpoint = configuration.get("default", "endpoint")
    if not endpoint:
        raise OvhConfigError("no OVH endpoint: set ovh:endpoint (e.g. ovh-eu) or [default] endpoint= in ovh.conf")
    name = register_endpoint(endpoint)
    try:
        return ovh.Client(endpoint=name, application_key=application_key, application_secret=application_secret,
                          consumer_key=consumer_key, config_file=config_file, timeout=timeout)
    except ox.InvalidConfiguration as err:
        raise OvhConfigError(f"OVH credentials for {endpoint}: {err}") from None


def _status(err: ox.APIError) -> Optional[int]:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _error_code(err: ox.APIError) -> Optional[str]:
    response = getattr(err, "response", None)
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("errorCode") if isinstance(body, dict) else None


def _retry_after(err: ox.APIError) -> Optional[float]:
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def resilient_call(client: ovh.Client, method: str, path: str, body: Optional[dict] = None, *,
                   need_auth: bool = True, retry: Retry = Retry(), deadline: Optional[float] = None,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> Any:
    """One API call (`path` relative to the endpoint, query string included), retried when that can help."""
    what = f"{method} {path}"
    last: Optional[BaseException] = None
    resynced = False
    attempt = 0
    while attempt < retry.attempts:
        try:
            return client.call(method, path, body, need_auth)
        except _AUTH_EXCEPTIONS as err:
            if getattr(err, "response", None) is None:  # python-ovh refused to sign: a key is missing
                raise OvhConfigError(f"OVH credentials incomplete, {what} not sent: {err}") from None
            code = _error_code(err) or type(err).__name__
            raise OvhAuthError(f"OVH API refused {what}: {err} ({_AUTH_HINTS.get(code, code)})", code) from None
        except ox.ResourceConflictError as err:
            raise OvhConflict(f"OVH API refused {what}: {err}") from None
        except ox.ResourceNotFoundError as err:
            raise OvhNotFound(f"OVH API: {what}: {err}") from None
        except ox.BadParametersError as err:
            code = _error_code(err)
            if code == "QUERY_TIME_OUT" and not resynced:
                resynced = True
                client._time_delta = None  # python-ovh's cache of the API clock offset: re-read /auth/time
                continue
            if code == "INVALID_SIGNATURE":
                raise OvhAuthError(f"OVH API refused {what}: {err} ({_AUTH_HINTS[code]})", code) from None
            if code == "QUERY_TIME_OUT":
                raise OvhAuthError(f"OVH API refused {what}: {err} (the clocks still disagree after "
                                   "re-reading /auth/time)", code) from None
            raise OvhError(f"OVH API rejected {what}: {err}") from None
        except (ox.HTTPError, ox.InvalidResponse, ox.NetworkError) as err:
            last = err
            wait = retry.delay(attempt)
        except ox.APIError as err:
            status = _status(err)
            if status == 401:
                raise OvhAuthError(f"OVH API refused {what}: {err} ({_AUTH_HINTS['NOT_AUTHENTICATED']})",
                                   "NOT_AUTHENTICATED") from None
            if status is None or not (status == 429 or status >= 500):
                raise OvhError(f"OVH API rejected {what} (HTTP {status}): {err}") from None
            last = err
            wait = max(retry.delay(attempt), min(_retry_after(err) or 0.0, retry.maximum))
        attempt += 1
        if attempt >= retry.attempts:
            break
        if deadline is not None and clock() + wait > deadline:
            raise OvhUnavailable(f"OVH API: {what} failed and the time bound leaves no room to retry "
                                 f"(after {attempt} attempt(s)): {_describe(last)}")
        sleep(wait)
    raise OvhUnavailable(f"OVH API: {what} failed {retry.attempts} times: {_describe(last)}")


def _describe(err: Optional[BaseException]) -> str:
    if err is None:
        return "no answer"
    status = _status(err) if isinstance(err, ox.APIError) else None
    cause = err.args[1] if isinstance(err, ox.HTTPError) and len(err.args) > 1 else None
    text = str(err.args[0]) if err.args else type(err).__name__
    if status:
        text = f"HTTP {status} {text}"
    if cause is not None:
        text = f"{text}: {type(cause).__name__}"
    return text
