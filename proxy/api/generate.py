"""POST /gemini/generate: text generation with retry and model fallback."""
from flask import current_app, request as http_request
from flask_restx import Namespace, Resource, fields

from ..errors import InvalidRequest, require_unicode
from ..cache.generations import generate_cached
from ..requestctx import current as current_state
from ..upstream.chain import ON_CHAIN
from ..upstream.messages import GenerationRequest
from .rendering import restx_json
from .schemas import document_errors, error_detail, error_model
from .validation import expect_valid

ns = Namespace("gemini", description="Text generation through Gemini", path="/gemini")
ns.add_model("ErrorDetail", error_detail)
ns.add_model("Error", error_model)

prompt_model = ns.model("Prompt", {
    "text": fields.String(required=True, min_length=1, pattern=r"\S", description="The prompt text (not blank)",
                          example="Write a haiku about proxies."),
}, strict=True)

config_model = ns.model("GenerationConfig", {
    "temperature": fields.Float(min=0, max=2, description="Sampling temperature, 0 to 2", example=0.7),
    "max_output_tokens": fields.Integer(min=1, max=65536, example=100,
                                        description="Upper bound on generated tokens (the operator may lower it)"),
    "top_p": fields.Float(min=0, max=1, description="Nucleus sampling probability mass", example=0.95),
    "top_k": fields.Integer(min=1, max=2**31 - 1, description="Sample from the k most likely tokens", example=40),
    "stop_sequences": fields.List(fields.String(min_length=1), max_items=5,
                                  description="Up to 5 sequences that end generation", example=["\n\n"]),
}, strict=True)

request_model = ns.model("GenerateRequest", {
    "prompt": fields.Nested(prompt_model, required=True, description="What to generate from"),
    "generation_config": fields.Nested(config_model, description="Sampling settings"),
    "model": fields.String(description="A model the operator allows; default the first of the chain",
                           example="gemini-2.5-flash"),
    "system_instruction": fields.String(description="System instruction for the model",
                                        example="Answer in one sentence."),
}, strict=True)

metrics_model = ns.model("TokenMetrics", {
    "prompt_tokens": fields.Integer(description="Tokens in the prompt", example=5),
    "completion_tokens": fields.Integer(description="Tokens generated", example=20),
    "total_tokens": fields.Integer(description="Prompt plus completion tokens", example=25),
})

response_model = ns.model("GenerateResponse", {
    "text": fields.String(description="The generated text", example="Requests pass through..."),
    "metrics": fields.Nested(metrics_model, description="Token usage"),
    "model": fields.String(description="The model that answered", example="gemini-2.5-flash"),
    "finish_reason": fields.String(description="Why generation stopped (STOP, MAX_TOKENS, ...)",
                                   example="STOP"),
    "latency_ms": fields.Float(description="Time spent serving the request, in milliseconds", example=812.5),
    "request_id": fields.String(description="The request's id, also sent as X-Request-ID",
                                example="4f9c2b7e1a0d4c8e9b3f6a2d5e7c1b0a"),
    "token_source": fields.String(description="Where the counts came from: usage_metadata, count_tokens "
                                              "or estimate", example="usage_metadata"),
    "cache": fields.String(description="HIT (answered from the response cache), MISS, or OFF", example="MISS"),
})


def parse_generate(payload, app):
    """Checks the schema cannot express, then the service's request object."""
    config = app.config
    text = require_unicode(payload["prompt"]["text"], "prompt.text")
    require_unicode(payload.get("system_instruction") or "", "system_instruction")
    for sequence in (payload.get("generation_config") or {}).get("stop_sequences") or ():
        require_unicode(sequence, "generation_config.stop_sequences")
    if not text.strip():
        raise InvalidRequest("prompt.text must not be empty or only whitespace.")
    if len(text) > config["MAX_PROMPT_CHARS"]:
        raise InvalidRequest(f"prompt.text is longer than {config['MAX_PROMPT_CHARS']} characters.")
    settings = payload.get("generation_config") or {}
    limit = config["MAX_OUTPUT_TOKENS_LIMIT"]
    if settings.get("max_output_tokens") is not None and settings["max_output_tokens"] > limit:
        raise InvalidRequest(f"generation_config.max_output_tokens must be at most {limit}.")
    model = payload.get("model")
    app.extensions["engine"].chain.require_allowed(model, ON_CHAIN)
    return GenerationRequest(
        prompt=text,
        model=model,
        temperature=settings.get("temperature"),
        max_output_tokens=settings.get("max_output_tokens"),
        top_p=settings.get("top_p"),
        top_k=settings.get("top_k"),
        stop_sequences=tuple(settings.get("stop_sequences") or ()),
        system_instruction=payload.get("system_instruction"),
    )


@ns.route("/generate")
class Generate(Resource):
    @expect_valid(ns, request_model)
    @ns.response(200, "Generated text with its token metrics", response_model)
    @document_errors(ns, 400, 401, 403, 404, 408, 413, 422, 429, 502, 503, 504)
    def post(self):
        """Generate text with Gemini, retrying transient failures and falling back along the model chain."""
        state = current_state()
        payload = ns.payload
        state.model_requested = payload.get("model")
        app = current_app._get_current_object()  # looked up once: the app's config and extensions serve below
        state.generation_request = request = parse_generate(payload, app)
        generation, cache_status = generate_cached(app.extensions["cache"], app.extensions["gemini"], request,
                                                   http_request)
        if cache_status:
            state.cache_status = cache_status
        state.generation = generation
        completion = generation.completion
        return restx_json({
            "text": completion.text or "",
            "metrics": {
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "total_tokens": completion.total_tokens,
            },
            "model": generation.model,
            "finish_reason": completion.finish_reason,
            "latency_ms": state.elapsed_ms(),
            "request_id": state.request_id,
            "token_source": completion.token_source,
            "cache": state.cache_status or "OFF",
        })
