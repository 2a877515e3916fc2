"""Gemini's long-running video generation (Veo), emulated: models/{m}:predictLongRunning makes an operation
models/{m}/operations/{id} of the caller's key, done after `operation_polls_to_finish` reads, whose video is
a generated file of the same key, downloadable. Another key's operation is not found, as at Google."""
import hashlib

from flask import jsonify, request

from .files import add_file
from .paging import Caller, json_object, new_id

VIDEO_MODELS = ("veo-2.0-generate-001", "veo-3.0-generate-001", "veo-3.0-fast-generate-001",
                "veo-3.1-generate-preview", "veo-3.1-fast-generate-preview")
_RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"


def _video(prompt):
    """A few deterministic bytes that start as an MP4 does: enough for a client to save and compare."""
    return b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(prompt.encode()).digest() * 4


def register_operations(app, state, versions, google_error):
    caller = Caller(state, versions, google_error)

    @app.post("/<version>/models/<model>:predictLongRunning")
    def predict_long_running(version, model):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        if model not in VIDEO_MODELS:
            return caller.error(404, f"models/{model} is not found for API version {version}, or is not "
                                     "supported for predictLongRunning.")
        body = json_object()
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            return caller.error(400, "* PredictLongRunningRequest.instances: instances is required")
        name = f"models/{model}/operations/{new_id()}"
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        count = parameters.get("sampleCount", 1)
        if not isinstance(count, int) or not 1 <= count <= 4:
            return caller.error(400, "sampleCount must be between 1 and 4.")
        state.keep(name, key, {"name": name, "prompt": str(instances[0].get("prompt") or ""), "count": count,
                               "response": None})
        return jsonify({"name": name})

    @app.get("/<version>/models/<model>/operations/<operation_id>")
    def get_operation(version, model, operation_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = f"models/{model}/operations/{operation_id}"
        held = state.owned(name, key)
        if held is None:
            return caller.error(404, "Requested entity was not found.")
        if held["response"] is None and state.poll(name) >= max(1, int(state.operation_polls_to_finish)):
            samples = []
            for number in range(held["count"]):
                file = add_file(state, key, _video(f"{held['prompt']}|{number}"), "video/mp4",
                                version=version)
                samples.append({"video": {"uri": file["downloadUri"]}})
            held["response"] = {"@type": _RESPONSE_TYPE, "generateVideoResponse": {"generatedSamples": samples}}
        if held["response"] is None:
            return jsonify({"name": name})
        return jsonify({"name": name, "done": True, "response": held["response"]})
