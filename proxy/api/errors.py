"""One JSON error shape for the whole API, and the mapping of every failure onto it."""
import logging

from flask import g, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import errors

log = logging.getLogger(__name__)

_BY_STATUS = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedContentType,
}


def _body_is_broken_json():
    # Flask reports a JSON decoding failure as a bare 400 outside debug mode; look for ourselves.
    if not has_request_context() or not request.is_json:
        return False
    return request.get_json(silent=True) is None


def from_http_exception(exc):
    """Translate Werkzeug's and Flask-RESTX's HTTP errors into the proxy's typed errors."""
    data = getattr(exc, "data", None) or {}
    if exc.code == 400 and "errors" in data:
        return errors.InvalidRequest("The request body does not match the schema.", details=data["errors"])
    if exc.code == 400 and _body_is_broken_json():
        return errors.MalformedJson("The request body is not valid JSON.")
    if exc.code == 415:
        return errors.UnsupportedContentType("Send the body as JSON with Content-Type: application/json.")
    if exc.code == 413:
        return errors.PayloadTooLarge("The request body is larger than this server accepts.")
    kind = _BY_STATUS.get(exc.code)
    if kind is not None:
        return kind(data.get("message") or exc.description or kind.code)
    if exc.code and 400 <= exc.code < 500:
        error = errors.InvalidRequest(data.get("message") or exc.description or "Invalid request.")
        error.status = exc.code
        return error
    return errors.ProxyError("The server could not complete the request.")


def to_proxy_error(exc):
    if isinstance(exc, errors.ProxyError):
        return exc
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    log.exception("unhandled error", exc_info=exc)
    return errors.ProxyError("The server hit an unexpected error; it has been logged.")


def error_body(error):
    body = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return {"error": body, "request_id": g.get("request_id")}


def error_response(exc):
    error = to_proxy_error(exc)
    g.error = error  # the request log reads it
    response = jsonify(error_body(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def register(app):
    """Errors raised outside Flask-RESTX resources (unknown paths, body too large) too."""
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(errors.ProxyError, error_response)
    app.register_error_handler(Exception, error_response)
