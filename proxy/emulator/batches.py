"""Gemini's Batch API, emulated: models/{m}:batchGenerateContent and :asyncBatchEmbedContent make a batch
(an Operation whose metadata is the GenerateContentBatch) of inline requests or of a JSONL file of the same
key's; reading it moves it PENDING -> RUNNING -> SUCCEEDED after `batch_polls_to_finish` reads, then its
results are inline (each with its usageMetadata) or in a responses file of the same key. Another key's
batch is not found, as at Google."""
import inspect
import json

from flask import jsonify, request

from . import generation, replies
from .files import add_file, file_bytes
from .paging import Caller, new_id, now, page, request_key, stamp
from .reading import BadRequest, field

_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1beta."


def _call(handler, state, model, body, key):
    """Call a generation function with the key when it takes one (generation.py is moving to
    `(state, model, body, key)`), else without."""
    if len(inspect.signature(handler).parameters) >= 4:
        return handler(state, model, body, key)
    return handler(state, model, body)


def _generated(state, model, body, key):
    try:
        return {"response": _call(generation.answer, state, model, body, key)}
    except BadRequest as exc:
        return {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}}


def _embedded(state, model, body, key):
    try:
        return {"response": _call(generation.ACTIONS["embedContent"], state, model, body, key).get_json()}
    except BadRequest as exc:
        return {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}}


def _input(state, key, config):
    """[(key or metadata, request)] of a batch's inputConfig; None when its file is not the key's."""
    if not isinstance(config, dict):
        raise BadRequest("* batch.input_config: input_config is required")
    file_name = field(config, "fileName", "file_name")
    if file_name is not None:
        if not isinstance(file_name, str):
            raise BadRequest("Invalid value at 'batch.input_config.file_name'.")
        data = file_bytes(state, file_name, key)
        if data is None:
            return None
        try:
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        except ValueError:
            raise BadRequest(f"{file_name} is not JSON Lines.") from None
        if not all(isinstance(line, dict) and isinstance(line.get("request") or {}, dict) for line in lines):
            raise BadRequest(f"Each line of {file_name} must be an object with a request.")
        return [({"key": line.get("key")}, line.get("request") or {}) for line in lines]
    requests_ = config.get("requests")
    if isinstance(requests_, dict):
        requests_ = requests_.get("requests")
    if not isinstance(requests_, list) or not requests_:
        raise BadRequest("* batch.input_config.requests: requests is not specified")
    if not all(isinstance(item, dict) and isinstance(item.get("request") or {}, dict) for item in requests_):
        raise BadRequest("Invalid value at 'batch.input_config.requests'.")
    return [(item.get("metadata"), item.get("request") or {}) for item in requests_]


def _make(state, model, body, key, kind):
    key = key or request_key()
    batch = (body or {}).get("batch")
    if not isinstance(batch, dict):
        raise BadRequest("* batch: batch is required")
    config = field(batch, "inputConfig", "input_config")
    items = _input(state, key, config)
    if items is None:
        name = field(config, "fileName", "file_name")
        refused = jsonify(replies.error_body(403, f"You do not have permission to access the File {name} or it "
                                                  "may not exist."))
        refused.status_code = 403
        return refused
    answer = _generated if kind == "GenerateContentBatch" else _embedded
    results = []
    for meta, inner in items:
        result = answer(state, model, inner, key)
        if meta:
            result["metadata"] = meta
        results.append(result)
    name = f"batches/{new_id()}"
    created = stamp(now())
    metadata = {"@type": _TYPES + kind, "name": name, "model": f"models/{model}",
                "displayName": field(batch, "displayName", "display_name") or "", "createTime": created,
                "updateTime": created, "state": "BATCH_STATE_PENDING",
                "batchStats": {"requestCount": str(len(items)), "pendingRequestCount": str(len(items))}}
    state.keep(name, key, {"name": name, "metadata": metadata, "results": results, "cancelled": False,
                           "to_file": field(config, "fileName", "file_name") is not None, "output": None})
    return jsonify({"name": name, "metadata": metadata})


def batch_generate(state, model, body, key=None):
    return _make(state, model, body, key, "GenerateContentBatch")


def batch_embed(state, model, body, key=None):
    return _make(state, model, body, key, "EmbedContentBatch")


# The model actions serve() looks up beside generation.ACTIONS.
ACTIONS = {"batchGenerateContent": batch_generate, "asyncBatchEmbedContent": batch_embed}


def _output(state, key, held):
    """The batch's output once it has finished: its results inline, or a responses file of its key's."""
    if held["output"] is None:
        results = held["results"]
        if held["to_file"]:
            lines = "".join(json.dumps({**({"key": r["metadata"].get("key")} if r.get("metadata") else {}),
                                        **{k: v for k, v in r.items() if k != "metadata"}}) + "\n"
                            for r in results)
            file = add_file(state, key, lines.encode(), "application/jsonl",
                            f"{held['name'].split('/')[1]}-responses", version=request.view_args["version"])
            held["output"] = {"responsesFile": file["name"]}
        else:
            held["output"] = {"inlinedResponses": {"inlinedResponses": results}}
    return held["output"]


def operation(state, key, held, advance):
    """The batch's Operation as Google shows it; `advance` counts this read towards its finishing."""
    metadata = dict(held["metadata"])
    if metadata["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING") and advance:
        polls = state.poll(held["name"])
        finish = max(1, int(state.batch_polls_to_finish))
        if polls >= finish:
            results = held["results"]
            failed = sum(1 for r in results if "error" in r)
            metadata.update(state="BATCH_STATE_SUCCEEDED", endTime=stamp(now()), updateTime=stamp(now()),
                            batchStats={"requestCount": str(len(results)),
                                        "successfulRequestCount": str(len(results) - failed),
                                        **({"failedRequestCount": str(failed)} if failed else {})})
        else:
            metadata.update(state="BATCH_STATE_RUNNING", updateTime=stamp(now()))
        held["metadata"] = metadata
    body = {"name": held["name"], "metadata": metadata}
    if metadata["state"] == "BATCH_STATE_SUCCEEDED":
        output = _output(state, key, held)
        metadata["output"] = output
        kind = metadata["@type"].rsplit(".", 1)[1]
        body.update(done=True, response={"@type": f"{_TYPES}{kind}Output", **output})
    elif metadata["state"] == "BATCH_STATE_CANCELLED":
        body["done"] = True
    return body


def register_batches(app, state, versions, google_error):
    caller = Caller(state, versions, google_error)

    @app.get("/<version>/batches")
    def list_batches(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        held = [operation(state, key, b, False) for b in state.owned_by(key, "batches/")]
        body = page(held[::-1], "operations", default_size=10, max_size=1000)  # newest first, as Google lists
        return jsonify(body) if body is not None else caller.error(400, "Invalid page token.")

    @app.route("/<version>/batches/<batch_id>", methods=["GET", "POST", "DELETE"])
    def one_batch(version, batch_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        batch_id, _, verb = batch_id.partition(":")
        name = f"batches/{batch_id}"
        held = state.owned(name, key)
        if held is None or (request.method == "POST") != (verb == "cancel") or verb not in ("", "cancel"):
            return caller.error(404, "Requested entity was not found.")
        if request.method == "DELETE":
            state.forget(name)
            return jsonify({})
        if verb == "cancel":
            if held["metadata"]["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                held["metadata"] = {**held["metadata"], "state": "BATCH_STATE_CANCELLED",
                                    "endTime": stamp(now()), "updateTime": stamp(now())}
            return jsonify({})
        return jsonify(operation(state, key, held, True))
