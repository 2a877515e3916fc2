"""Schemas shared by every namespace (the error shape)."""
from flask_restx import Model, fields

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
        413: "Request body too large",
        422: "Gemini blocked the prompt or withheld the answer (PROMPT_BLOCKED, RESPONSE_BLOCKED)",
        429: "Every model and key is out of quota (QUOTA_EXHAUSTED); see Retry-After",
        502: "Gemini failed after retries and fallback (UPSTREAM_ERROR)",
        503: "No Gemini API key is configured (NO_API_KEY), or the database is unreachable",
        504: "No answer within the request deadline (DEADLINE_EXCEEDED)",
    }

    def decorate(func):
        for status in statuses:
            func = ns.response(status, descriptions[status], error_model)(func)
        return func

    return decorate
