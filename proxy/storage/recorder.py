"""Builds each request's record from its request state: the one builder every API's recorder starts from,
and the after_request hook that records the /gemini APIs' requests and every refused one."""
from functools import partial


from ..requestctx import NATIVE, current as current_state, current_application, current_request
from .records import MetricRecord, RequestRecord

UNPARSED_NATIVE = "/{unparsed}"  # a native path refused before it was understood: never the client's bytes
_MESSAGE_MAX = 2000  # characters of an error message kept


def request_record(state, route, method, status_code, **fields):
    """The record of the request `state` describes: what every record takes from the request, with the
    fields of its API's own (a generation's tokens, an exchange, attempts) given or filled in after."""
    client = state.client
    return RequestRecord(
        request_id=state.request_id, created_at=state.started_at, route=route, method=method,
        status_code=status_code, latency_ms=state.elapsed_ms(), client_id=client.id if client is not None else None,
        model_requested=state.model_requested, cache_status=state.cache_status, attempt_count=0, **fields)


def should_record(state):
    """Generation APIs; native calls record themselves unless they failed before forwarding."""
    return state.recorded_area and current_request().method != "OPTIONS" and not state.native_recorded


def _route(state):
    if state.area == NATIVE:
        return state.native.route.template if state.native is not None else UNPARSED_NATIVE
    incoming = current_request()
    return incoming.url_rule.rule if incoming.url_rule else incoming.path


def build_entry(state, response):
    """The record of a /gemini request, or of any request refused before its API took it, from its state."""
    generation, settings, error = state.generation, state.generation_request, state.error
    record = request_record(state, _route(state), current_request().method, response.status_code)
    if settings is not None:
        record.temperature, record.max_output_tokens = settings.temperature, settings.max_output_tokens
    attempts = generation.attempts if generation else (error.attempts if error else [])
    record.with_attempts(attempts)
    record.model_used = generation.model if generation else (attempts[-1].model if attempts else None)
    if error:
        record.error_code, record.error_message = error.code, error.message[:_MESSAGE_MAX]
    if generation:
        _add_completion(record, generation.completion, response.status_code)
    return record


def _add_completion(record, completion, status_code):
    record.with_usage(completion.usage)
    record.token_source = completion.token_source
    record.finish_reason = completion.finish_reason
    if status_code == 200 and record.cache_status != "HIT":  # metrics count Gemini's work
        record.metric = MetricRecord(
            timestamp=record.created_at, prompt_tokens=completion.prompt_tokens or 0,
            completion_tokens=completion.completion_tokens or 0, total_tokens=completion.total_tokens or 0,
            temperature=record.temperature, max_output_tokens=record.max_output_tokens)


def record(response):
    """after_request hook: builds the record now and hands it to the writer once the client has the
    response, so no database write is on the request's path. Never changes the client's answer."""
    state = current_state()
    if not should_record(state):
        return response
    entry = build_entry(state, response)
    records = current_application().extensions["records"]
    records.finished(entry)
    response.call_on_close(partial(records.submit, entry))
    return response
