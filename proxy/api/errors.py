"""Every failure mapped to a typed error, and answered in the shape its API's clients expect."""
import logging

from flask import has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import errors
from ..requestctx import current as current_state, current_request_id

log = logging.getLogger(__name__)

_BY_STATUS = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedContentType,
}


def from_http_exception(exc):
    """Translate Werkzeug's and Flask-RESTX's HTTP errors into the proxy's typed errors."""
    data = getattr(exc, "data", None) or {}
    if exc.code == 400 and "errors" in data:
        return errors.InvalidRequest("The request body does not match the schema.", details=data["errors"])
    if exc.code == 415:
        return errors.UnsupportedContentType("Send the body as JSON with Content-Type: application/json.")
    if exc.code == 413:
        return errors.PayloadTooLarge("The request body is larger than this server accepts.")
    if exc.code == 429:
        return errors.RateLimited(f"Rate limit exceeded ({exc.description}).")
    if exc.code == 405:
        return _method_not_allowed(exc)
    kind = _BY_STATUS.get(exc.code)
    if kind is not None:
        return kind(data.get("message") or exc.description or kind.code)
    if exc.code and 400 <= exc.code < 500:
        error = errors.InvalidRequest(data.get("message") or exc.description or "Invalid request.")
        error.status = exc.code
        return error
    return errors.ProxyError("The server could not complete the request.")


def _method_not_allowed(exc):
    # RFC 9110: a 405 says which methods the resource does take (Werkzeug's router knows them).
    error = errors.MethodNotAllowed(exc.description or errors.MethodNotAllowed.code)
    if getattr(exc, "valid_methods", None):
        error.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return error


def to_proxy_error(exc):
    if isinstance(exc, errors.ProxyError):
        return exc
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    log.exception("unhandled error", exc_info=exc)
    return errors.ProxyError("The server hit an unexpected error; it has been logged.")


_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 422: "FAILED_PRECONDITION",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                  504: "DEADLINE_EXCEEDED"}
# The codes of the Flask service /gemini-proxy users migrate from.
# An unexpected error in the proxy itself says so, rather than blaming Gemini.
_COMPAT_CODES = {"INTERNAL_ERROR": "INTERNAL_ERROR", "UNAUTHORIZED": "UNAUTHORIZED",
                 "PROMPT_TOO_LONG": "PROMPT_TOO_LONG",
                 "MODEL_NOT_ALLOWED": "MODEL_NOT_FOUND", "MODEL_NOT_FOUND": "MODEL_NOT_FOUND",
                 "QUOTA_EXHAUSTED": "QUOTA_ERROR", "RATE_LIMITED": "QUOTA_ERROR",
                 "TOKEN_QUOTA_EXCEEDED": "QUOTA_ERROR", "BUDGET_EXCEEDED": "QUOTA_ERROR",
                 "KEY_EXPIRED": "UNAUTHORIZED", "MODEL_NOT_ALLOWED_FOR_KEY": "MODEL_NOT_FOUND"}


def error_body(error):
    body = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return {"error": body, "request_id": current_request_id()}


def google_body(error):
    """Google's shape on the native pass-through, so SDKs raise what they would raise against Gemini."""
    body = {"code": error.status, "message": error.message, "status": _GOOGLE_STATUS.get(error.status, "UNKNOWN")}
    if getattr(error, "stated_reason", False):
        # The proxy's own refusals (a budget, an expired key) say which in Google's way: an ErrorInfo reason.
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": error.code,
                            "domain": "gemini-proxy"}]
    return {"error": body}


def compat_code(error):
    if error.code in _COMPAT_CODES:
        return _COMPAT_CODES[error.code]
    return "INVALID_REQUEST" if error.status < 500 and error.status != 422 else "UPSTREAM_ERROR"


def compat_body(error):
    return {"result": "Failed", "errors": [{"code": compat_code(error), "message": error.message}]}


def _shape_for_path(path):
    path = "/" + path.lstrip("/")  # as routing sees it: Werkzeug ignores leading slashes
    if path.startswith(("/v1beta/", "/v1/", "/v1alpha/", "/upload/", "/download/")):
        return google_body
    if path.startswith("/gemini-proxy"):
        return compat_body
    return error_body


def error_response(exc):
    error = to_proxy_error(exc)
    in_request = has_request_context()
    if in_request:
        current_state().error = error  # the request's record reads it
    shape = _shape_for_path(request.path) if in_request else error_body
    response = jsonify(shape(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register(app):
    """Errors raised outside Flask-RESTX resources (unknown paths, body too large) too."""
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(errors.ProxyError, error_response)
    app.register_error_handler(Exception, error_response)
