"""Gemini's errors on its OpenAI-compatible endpoint, in OpenAI's error shape.

There Gemini answers errors as a JSON list (`[{"error": {...}}]`), which OpenAI's SDKs cannot read (they
raise with no message); clients of that endpoint expect `{"error": {"message", "type", "code", "param"}}`."""
import json

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error"}


def error_type(status):
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def from_google(status, body):
    """OpenAI's error body for a Gemini error answer (bytes or a parsed value) of `status`."""
    value = body
    if isinstance(body, (bytes, str)):
        try:
            value = json.loads(body or b"null")
        except ValueError:
            value = None
    if isinstance(value, list) and value:
        value = value[0]
    error = value.get("error") if isinstance(value, dict) else None
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"Gemini answered {status} with no message."
    code = error.get("status") if isinstance(error.get("status"), str) else None
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": None}}


def encoded(status, body):
    return json.dumps(from_google(status, body)).encode()
