"""What went wrong on one upstream call, read from Google's error body (or from the TLS handshake)."""
import ssl
from dataclasses import dataclass, field
from typing import Optional

# How the service treats each kind of failure.
QUOTA = "quota"  # 429: rest this key x model, try another key or model
TRANSIENT = "transient"  # 5xx, connection trouble: back off and retry
TIMEOUT = "timeout"  # no answer in time: retry while the deadline allows
KEY_REJECTED = "key_rejected"  # the server's key is invalid or forbidden: rest it, try another
NOT_FOUND = "not_found"  # the model does not exist here: fall back
REJECTED = "rejected"  # the request itself is invalid: no retry, no fallback
# Gemini's TLS certificate failed verification: every model is behind the same host, and a certificate
# does not become trusted in a second, so neither a retry nor a fallback can help; the operator must act.
UNTRUSTED = "untrusted"

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


@dataclass
class UpstreamFailure(Exception):
    kind: str
    message: str
    status: Optional[int] = None
    reason: Optional[str] = None  # ErrorInfo.reason, e.g. API_KEY_INVALID
    retry_delay: Optional[float] = None  # seconds, from RetryInfo
    daily_quota: bool = False  # a QuotaFailure violation names a per-day quota
    reply: object = field(default=None, repr=False)  # raw HTTP: the answer read whole, relayed if nothing better

    def __str__(self):
        return self.message


def parse_duration(text):
    """Seconds in a protobuf Duration's JSON form ("22s", "1.5s"), or None."""
    if not isinstance(text, str) or not text.endswith("s"):
        return None
    try:
        return max(0.0, float(text[:-1]))
    except ValueError:
        return None


def kind_for_status(status, reason=None):
    if status == 429:
        return QUOTA
    if status in (401, 403) or reason in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"):
        return KEY_REJECTED
    if status == 404:
        return NOT_FOUND
    if status == 408 or status == 504:
        return TIMEOUT
    if status is not None and status >= 500:
        return TRANSIENT
    return REJECTED


def from_google_error(status, details, message):
    """Build a failure from an HTTP status and the `details` list of Google's error body."""
    reason, retry_delay, daily = None, None, False
    for detail in details or ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _RETRY_INFO:
            retry_delay = parse_duration(detail.get("retryDelay"))
        elif kind == _QUOTA_FAILURE:
            for violation in detail.get("violations") or ():
                quota_id = str(violation.get("quotaId", "")) + str(violation.get("quotaMetric", ""))
                daily = daily or "perday" in quota_id.lower()
        elif kind == _ERROR_INFO:
            reason = detail.get("reason")
    return UpstreamFailure(
        kind=kind_for_status(status, reason),
        message=message,
        status=status,
        reason=reason,
        retry_delay=retry_delay,
        daily_quota=daily,
    )


def untrusted_certificate(exc):
    """Why the peer's certificate was refused, when `exc` (or an error it wraps) is a failed TLS
    verification; None for any other failure, a handshake cut short included (that one may pass)."""
    seen, pending = set(), [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLCertVerificationError):
            return getattr(error, "verify_message", None) or "certificate verify failed"
        if isinstance(error, BaseException):
            pending += [error.__cause__, error.__context__, *getattr(error, "args", ())]
            pending.append(getattr(error, "reason", None))  # urllib3's MaxRetryError and ProxyError
    return None


def untrusted_message(reason):
    return (f"Gemini's TLS certificate is not trusted here ({reason}); a private CA, such as an egress "
            "proxy's that inspects TLS, goes in SSL_CERT_FILE")
