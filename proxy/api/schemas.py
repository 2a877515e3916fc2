"""Schemas shared by every namespace (the error shape)."""
from datetime import datetime, timezone

from flask_restx import Model, fields


class UtcDateTime(fields.DateTime):
    """The database keeps naive UTC; the API says so with an offset, as RFC 3339 requires."""

    def format(self, value):
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return super().format(value)


def nullable(field_class):
    """A field that may be null, said the Swagger 2.0 way (x-nullable)."""

    class Nullable(field_class):
        __schema_type__ = field_class.__schema_type__

        @property
        def __schema__(self):
            return {**super().__schema__, "x-nullable": True}

    Nullable.__name__ = f"Nullable{field_class.__name__}"
    return Nullable

error_detail = Model("ErrorDetail", {
    "code": fields.String(required=True, description="Stable machine-readable error code",
                          example="INVALID_REQUEST"),
    "message": fields.String(required=True, description="What went wrong, for a person",
                             example="prompt.text must not be empty."),
    "details": fields.Raw(description="Extra structured information, when there is any"),
})

error_model = Model("Error", {
    "error": fields.Nested(error_detail, required=True, description="The error"),
    "request_id": fields.String(description="The request's id, also sent as X-Request-ID",
                                example="4f9c2b7e1a0d4c8e9b3f6a2d5e7c1b0a"),
})


def document_errors(ns, *statuses):
    """Stack @ns.response for the given error statuses, all with the shared error model."""
    descriptions = {
        400: "Invalid input: missing or wrong-typed fields, out-of-range values, malformed JSON, "
             "wrong content type, or a model the operator does not allow",
        401: "Missing, wrong or revoked API key (UNAUTHORIZED), or one past its expiry date (KEY_EXPIRED)",
        403: "Operator endpoints are off: ADMIN_API_KEY is not set (ADMIN_DISABLED), or the model is not one "
             "this client key may use (MODEL_NOT_ALLOWED_FOR_KEY)",
        404: "No such resource (NOT_FOUND) or Gemini does not know the model (MODEL_NOT_FOUND)",
        408: "The request body did not arrive within BODY_READ_SECONDS (REQUEST_TIMEOUT)",
        413: "Request body too large",
        422: "Gemini blocked the prompt or withheld the answer (PROMPT_BLOCKED, RESPONSE_BLOCKED)",
        429: "Rate limit (RATE_LIMITED), daily token quota (TOKEN_QUOTA_EXCEEDED), the key's or the operator's "
             "budget spent (BUDGET_EXCEEDED; Retry-After: the period's end) or every model and key out of quota "
             "(QUOTA_EXHAUSTED); see Retry-After",
        502: "Gemini failed after retries and fallback (UPSTREAM_ERROR)",
        503: "No Gemini API key is configured (NO_API_KEY), or the database is unreachable",
        504: "No answer within the request deadline (DEADLINE_EXCEEDED)",
    }

    def decorate(func):
        for status in statuses:
            func = ns.response(status, descriptions[status], error_model)(func)
        return func

    return decorate
