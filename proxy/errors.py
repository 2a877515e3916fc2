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


class PayloadTooLarge(ProxyError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


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
