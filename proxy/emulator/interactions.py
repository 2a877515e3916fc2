"""Gemini's Interactions API, emulated: POST interactions (a model or an agent, input, previous_interaction_id,
stream, background, store), GET, DELETE and cancel, each interaction its key's project's. A previous
interaction of another key is not found; a background one is in_progress until read
`interaction_polls_to_finish` times; `stream: true` answers Server-Sent Events as Google does."""
import json

from flask import Response, jsonify, request

from . import generation, replies
from .paging import Caller, new_id, now, stamp
from .reading import BadRequest

_AGENT_MODEL = "gemini-2.5-pro"  # agents (deep research) answer with the emulator's largest model
# The Interactions API's error codes are strings (ai.google.dev/gemini-api/docs/api-errors), not numbers.
_CODES = {400: "invalid_request", 401: "authentication", 403: "permission_denied", 404: "not_found",
          429: "rate_limit_exceeded", 500: "internal_error", 503: "unavailable", 504: "deadline_exceeded"}


class _Caller(Caller):
    """Caller with the Interactions API's error shape: {"error": {"code": "not_found", "message": ...}}."""

    def error(self, status, message, code=None):
        return self.google_error(status, {"error": {"code": code or _CODES.get(status, "unknown"),
                                                    "message": message}})

    def check(self, version):
        key, refusal = super().check(version)
        if refusal is None:
            return key, None
        message = (refusal.get_json(silent=True) or {}).get("error", {}).get("message", "")
        code = "authentication" if refusal.status_code in (400, 401, 403) and version in self.versions else None
        return key, self.error(refusal.status_code, message, code)


def _texts(value):
    """The texts of an interaction's input: a string, content blocks, or turns of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        return _texts(value.get("content") or value.get("parts") or [])
    return []


def _run(state, key, body, history):
    """The interaction's steps and usage, from the emulator's generateContent over the whole conversation."""
    model = body.get("model") or _AGENT_MODEL
    prompt = " ".join(_texts(body.get("input")))
    if not prompt:
        raise BadRequest("input is required.")
    contents = history + [{"role": "user", "parts": [{"text": prompt}]}]
    request_body = {"contents": contents}
    if isinstance(body.get("system_instruction"), str):
        request_body["systemInstruction"] = {"parts": [{"text": body["system_instruction"]}]}
    config = body.get("generation_config") or {}
    if isinstance(config.get("max_output_tokens"), int):
        request_body["generationConfig"] = {"maxOutputTokens": config["max_output_tokens"]}
    answer = generation.answer(state, model, request_body, key)
    parts = ((answer.get("candidates") or [{}])[0].get("content") or {}).get("parts") or []
    text = "".join(part.get("text", "") for part in parts)
    usage = answer.get("usageMetadata") or {}
    return contents + [{"role": "model", "parts": [{"text": text}]}], text, {
        "total_input_tokens": usage.get("promptTokenCount", 0),
        "total_output_tokens": usage.get("candidatesTokenCount", 0),
        "total_tokens": usage.get("totalTokenCount", 0)}


def _view(held, status=None):
    status = status or held["status"]
    body = {"id": held["id"], "status": status, "created": held["created"], "updated": held["updated"],
            held["kind"]: held["who"]}
    if held.get("previous_interaction_id"):
        body["previous_interaction_id"] = held["previous_interaction_id"]
    body["steps"] = [{"type": "user_input", "content": [{"type": "text", "text": held["prompt"]}]}]
    if status == "completed":
        body["steps"].append({"type": "model_output", "content": [{"type": "text", "text": held["text"]}]})
        body["usage"] = held["usage"]
    return body


def _events(held):
    """The interaction as Google streams it: created, one model_output step in deltas, completed."""
    words = held["text"].split(" ")
    deltas = [" ".join(words[i:i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
    events = [{"event_type": "interaction.created", "interaction": _view(held, "in_progress")},
              {"event_type": "step.start", "index": 1, "step": {"type": "model_output"}}]
    events += [{"event_type": "step.delta", "index": 1, "delta": {"type": "text", "text": d}} for d in deltas]
    events += [{"event_type": "step.stop", "index": 1, "usage": held["usage"]},
               {"event_type": "interaction.completed", "interaction": _view(held, "completed")}]
    for number, event in enumerate(events):
        event["event_id"] = f"{held['id']}-{number}"
        yield f"event: {event['event_type']}\ndata: {json.dumps(event)}\n\n"


def register_interactions(app, state, versions, google_error):
    caller = _Caller(state, versions, google_error)

    def not_found(interaction_id):
        return caller.error(404, f"Interaction {interaction_id} not found.")

    @app.post("/<version>/interactions")
    def create_interaction(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not ((isinstance(body.get("model"), str) and body["model"]) or
                                              isinstance(body.get("agent"), str)):
            return caller.error(400, "One of model or agent is required.")
        if not isinstance(body.get("generation_config") or {}, dict):
            return caller.error(400, "Invalid value at 'generation_config'.")
        if body.get("model") is not None and not isinstance(body["model"], str):  # {"model": true, "agent": ...}
            return caller.error(400, "Invalid value at 'model'.")
        if body.get("model") and body["model"].removeprefix("models/") not in replies.MODELS:
            return caller.error(404, f"models/{body['model']} is not found.", "model_not_found")
        body = {**body, "model": body.get("model") and body["model"].removeprefix("models/")}
        history = []
        previous = body.get("previous_interaction_id")
        if previous is not None and not isinstance(previous, str):
            return caller.error(400, "Invalid value at 'previous_interaction_id'.")
        if previous:
            earlier = state.owned(f"interactions/{previous}", key)
            if earlier is None:  # another project's conversation is not there for this key
                return not_found(previous)
            history = earlier["contents"]
        try:
            contents, text, usage = _run(state, key, body, history)
        except BadRequest as exc:
            return caller.error(400, str(exc))
        created = stamp(now())
        interaction_id = new_id()
        held = {"id": interaction_id, "created": created, "updated": created, "contents": contents,
                "text": text, "usage": usage, "prompt": " ".join(_texts(body.get("input"))),
                "kind": "model" if body.get("model") else "agent", "who": body.get("model") or body["agent"],
                "previous_interaction_id": previous, "background": bool(body.get("background")),
                "status": "in_progress" if body.get("background") else "completed"}
        if body.get("store", True) is not False:
            state.keep(f"interactions/{interaction_id}", key, held)
        if body.get("stream"):
            return Response(_events(held), mimetype="text/event-stream")
        return jsonify(_view(held))

    @app.route("/<version>/interactions/<interaction_id>", methods=["GET", "DELETE"])
    def one_interaction(version, interaction_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = f"interactions/{interaction_id}"
        held = state.owned(name, key)
        if held is None:
            return not_found(interaction_id)
        if request.method == "DELETE":
            state.forget(name)
            return jsonify({})
        if held["status"] == "in_progress" and state.poll(name) >= max(1, int(state.interaction_polls_to_finish)):
            held.update(status="completed", updated=stamp(now()))
        if request.args.get("stream") in ("true", "True", "1"):
            return Response(_events(held), mimetype="text/event-stream")
        return jsonify(_view(held))

    @app.post("/<version>/interactions/<interaction_id>/cancel")
    def cancel_interaction(version, interaction_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        held = state.owned(f"interactions/{interaction_id}", key)
        if held is None:
            return not_found(interaction_id)
        if not held["background"] or held["status"] != "in_progress":
            return caller.error(400, "Only a background interaction that is in progress can be cancelled.")
        held.update(status="cancelled", updated=stamp(now()))
        return jsonify(_view(held))
