"""Typed errors the service layer raises; the API maps each to one JSON shape and status."""


class ProxyError(Exception):
    """An error with a stable machine-readable code and the HTTP status it answers with."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message, *, details=None, headers=None, attempts=None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.attempts = attempts or []


class InvalidRequest(ProxyError):
    status, code = 400, "INVALID_REQUEST"


class MalformedJson(InvalidRequest):
    code = "MALFORMED_JSON"


class UnsupportedContentType(InvalidRequest):
    code = "UNSUPPORTED_CONTENT_TYPE"


class ModelNotAllowed(InvalidRequest):
    code = "MODEL_NOT_ALLOWED"


class MalformedBody(InvalidRequest):
    """The body's framing is broken (a bad chunk) or it ended before its Content-Length."""

    code = "MALFORMED_BODY"


class PayloadTooLarge(ProxyError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class RequestTimeout(ProxyError):
    """The body did not arrive within BODY_READ_SECONDS."""

    status, code = 408, "REQUEST_TIMEOUT"


class NotFound(ProxyError):
    status, code = 404, "NOT_FOUND"


class MethodNotAllowed(ProxyError):
    status, code = 405, "METHOD_NOT_ALLOWED"


class UpstreamRejected(ProxyError):
    """Gemini refused the request itself as invalid (its 400): retrying elsewhere cannot help."""

    status, code = 400, "UPSTREAM_REJECTED"


class PromptBlocked(ProxyError):
    status, code = 422, "PROMPT_BLOCKED"


class ResponseBlocked(ProxyError):
    status, code = 422, "RESPONSE_BLOCKED"


class QuotaExhausted(ProxyError):
    status, code = 429, "QUOTA_EXHAUSTED"

    def __init__(self, message, *, retry_after, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after + 0.999))
        self.headers["Retry-After"] = str(self.retry_after)


class UpstreamFailed(ProxyError):
    status, code = 502, "UPSTREAM_ERROR"


class NoApiKey(ProxyError):
    status, code = 503, "NO_API_KEY"


class DeadlineExceeded(ProxyError):
    status, code = 504, "DEADLINE_EXCEEDED"


class PromptTooLong(InvalidRequest):
    code = "PROMPT_TOO_LONG"


class Unauthorized(ProxyError):
    status, code = 401, "UNAUTHORIZED"

    def __init__(self, message, **kwargs):
        super().__init__(message, **kwargs)
        self.headers["WWW-Authenticate"] = 'Bearer realm="gemini-proxy"'


class AdminDisabled(ProxyError):
    status, code = 403, "ADMIN_DISABLED"


class UpstreamModelNotFound(ProxyError):
    status, code = 404, "MODEL_NOT_FOUND"


class RateLimited(ProxyError):
    status, code = 429, "RATE_LIMITED"


class TokenQuotaExceeded(ProxyError):
    status, code = 429, "TOKEN_QUOTA_EXCEEDED"

    def __init__(self, message, *, retry_after, **kwargs):
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after)))


def require_unicode(value, field):
    """Text must be encodable as UTF-8: JSON can carry lone surrogates that Gemini cannot take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{field} is not valid Unicode text (it holds a lone surrogate).") from None
    return value


class ResourceNotFound(NotFound):
    """A stateful resource this client did not make through the proxy (another client's, or none)."""

    code = "RESOURCE_NOT_FOUND"


class ResourceKeyGone(ProxyError):
    """The server key whose project holds a resource has left the pool: the resource cannot be reached."""

    status, code = 409, "RESOURCE_KEY_GONE"


class ResourcesApart(ProxyError):
    """A call names resources that live in different keys' projects: no one key can serve it."""

    status, code = 409, "RESOURCES_ON_DIFFERENT_KEYS"


class KeyExpired(Unauthorized):
    """The client key's expiry date has passed (an operator can set a new one)."""

    code = "KEY_EXPIRED"
    stated_reason = True  # on the pass-through too (api.errors.google_body)


class ModelNotAllowedForKey(ModelNotAllowed):
    """The model is offered here, but not to this client key (its own allowlist)."""

    status, code = 403, "MODEL_NOT_ALLOWED_FOR_KEY"
    stated_reason = True


class BudgetExceeded(ProxyError):
    """The client's (or the operator's) budget in USD is spent for this period; Retry-After: its end."""

    status, code = 429, "BUDGET_EXCEEDED"
    stated_reason = True

    def __init__(self, message, *, retry_after, **kwargs):
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
