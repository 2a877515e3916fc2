"""POST /gemini-proxy: the API of the Flask proxy service users migrate from, on this gateway."""
from flask import current_app, request as http_request
from flask_restx import Namespace, Resource, fields

from ..cache.generations import generate_cached
from ..errors import InvalidRequest, PromptTooLong, require_unicode
from ..requestctx import current as current_state
from ..upstream.chain import LISTED
from ..upstream.messages import GenerationRequest
from .validation import expect_valid

ns = Namespace("gemini-proxy", description="Compatible API of the legacy Flask Gemini proxy", path="/gemini-proxy")

request_model = ns.model("CompatRequest", {
    "prompt": fields.String(required=True, min_length=1, pattern=r"\S", example="Hello!",
                            description="The prompt text (not blank; at most PROXY_MAX_PROMPT_CHARS)"),
    "model": fields.String(description="A model to use with your own api_key (give both or neither)",
                           example="gemini-2.5-flash"),
    "api_key": fields.String(description="Your own Gemini API key (give both or neither); never stored",
                             pattern=r"^[\x21-\x7e]{1,256}$"),
})

data_model = ns.model("CompatData", {
    "response": fields.String(description="The generated text", example="Hi! How can I help?"),
    "model": fields.String(description="The model that answered", example="gemini-2.5-flash"),
    "time": fields.Integer(description="Time taken, in milliseconds", example=1250),
})

success_model = ns.model("CompatSuccess", {
    "result": fields.String(description="Always OK on success", example="OK"),
    "data": fields.Nested(data_model, description="The answer"),
})

compat_error = ns.model("CompatError", {
    "code": fields.String(description="QUOTA_ERROR, MODEL_NOT_FOUND, INVALID_REQUEST, UNAUTHORIZED, "
                                      "PROMPT_TOO_LONG, UPSTREAM_ERROR or INTERNAL_ERROR", example="QUOTA_ERROR"),
    "message": fields.String(description="What went wrong", example="Every model and key is out of quota."),
})

failure_model = ns.model("CompatFailure", {
    "result": fields.String(description="Always Failed on failure", example="Failed"),
    "errors": fields.List(fields.Nested(compat_error), description="What went wrong"),
})

_FAILURES = {
    400: "INVALID_REQUEST, PROMPT_TOO_LONG or MODEL_NOT_FOUND (a model the operator does not allow)",
    401: "UNAUTHORIZED: missing, wrong, revoked or expired X-API-KEY",
    403: "MODEL_NOT_FOUND: the model is not one this client key may use",
    404: "MODEL_NOT_FOUND: Gemini does not know the model",
    408: "INVALID_REQUEST: the body did not arrive in time",
    413: "INVALID_REQUEST: body too large",
    422: "UPSTREAM_ERROR: Gemini blocked the prompt or withheld the answer",
    429: "QUOTA_ERROR: rate limit, token quota, budget or Gemini quota exhausted; see Retry-After",
    500: "INTERNAL_ERROR: the proxy itself failed unexpectedly (logged); not Gemini",
    502: "UPSTREAM_ERROR: Gemini failed after retries",
    503: "UPSTREAM_ERROR: no Gemini API key configured",
    504: "UPSTREAM_ERROR: no answer within the deadline",
}


def parse_compat(payload, app):
    config = app.config
    prompt = require_unicode(payload["prompt"], "prompt")
    if not prompt.strip():
        raise InvalidRequest("prompt must not be empty or only whitespace.")
    if len(prompt) > config["PROXY_MAX_PROMPT_CHARS"]:
        raise PromptTooLong(f"prompt is longer than {config['PROXY_MAX_PROMPT_CHARS']} characters.")
    model, api_key = payload.get("model"), payload.get("api_key")
    if bool(model) != bool(api_key):
        raise InvalidRequest("model and api_key go together: send both, or neither to use the server's.")
    app.extensions["engine"].chain.require_allowed(model or None, LISTED)
    return GenerationRequest(prompt=prompt, model=model), api_key


def _document_failures(func):
    for status, description in _FAILURES.items():
        func = ns.response(status, description, failure_model)(func)
    return func


@ns.route("")
class GeminiProxy(Resource):
    @expect_valid(ns, request_model)
    @ns.response(200, "Generated", success_model)
    @_document_failures
    @ns.doc(security="apikey")
    def post(self):
        """Generate text (send X-API-KEY); optionally with your own Gemini key and model."""
        state = current_state()
        state.model_requested = ns.payload.get("model")
        app = current_app._get_current_object()  # looked up once: the app's config and extensions serve below
        request, api_key = parse_compat(ns.payload, app)
        state.generation_request = request
        generation, cache_status = generate_cached(app.extensions["cache"], app.extensions["gemini"], request,
                                                   http_request, api_key)
        if cache_status:
            state.cache_status = cache_status
        state.generation = generation
        return {"result": "OK", "data": {"response": generation.completion.text or "", "model": generation.model,
                                          "time": int(round(state.elapsed_ms()))}}
