"""The emulator's own control API under /_emulator/ (latency, faults, reset, what it has seen), and the log
of every request as it arrived, which the proxy's entrance tests read."""
from urllib.parse import quote

from flask import jsonify, request


def register_control(app, state):
    @app.before_request
    def note_received():
        # What reached Gemini, byte for byte, whatever the route: tests of the proxy's entrances read it.
        if request.path.startswith("/_emulator/"):
            return
        environ = request.environ
        query = environ.get("QUERY_STRING", "")
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or (
            quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:") + (f"?{query}" if query else ""))
        with state.lock:
            state.received.append({"method": request.method, "target": target,
                                   "headers": {k.lower(): v for k, v in request.headers.items()}})

    @app.route("/_emulator/config", methods=["GET", "POST"])
    def control_config():
        live = app.extensions["emulator_live"]
        if request.method == "POST":
            settings = request.get_json(force=True)
            state.configure(settings)
            live.configure(settings)
        return jsonify({**live.settings(), "latency_ms": state.latency_ms, "latency_jitter_ms": state.latency_jitter_ms,
                        "stream_chunk_delay_ms": state.stream_chunk_delay_ms,
                        "omit_usage": state.omit_usage, "batch_polls_to_finish": state.batch_polls_to_finish,
                        "operation_polls_to_finish": state.operation_polls_to_finish,
                        "interaction_polls_to_finish": state.interaction_polls_to_finish})

    @app.get("/_emulator/resources")
    def control_resources():
        # Where each resource lives, so the proxy's tests can check a resource stayed with its key; the key
        # shown only by its last four characters, as a fingerprint.
        return jsonify([{"name": name, "kind": name.split("/")[-2],
                         "key": owner[-4:]} for name, owner, _ in state.every()])

    @app.post("/_emulator/faults")
    def control_faults():
        body = request.get_json(force=True)
        for fault in body if isinstance(body, list) else [body]:
            state.add_fault(fault)
        return jsonify(state.stats())

    @app.post("/_emulator/reset")
    def control_reset():
        state.reset()
        app.extensions["emulator_live"].reset()
        return jsonify(state.stats())

    @app.get("/_emulator/stats")
    def control_stats():
        return jsonify(state.stats())

    @app.get("/_emulator/received")
    def control_received():
        with state.lock:
            return jsonify(list(state.received))

    @app.get("/_emulator/requests")
    def control_requests():
        with state.lock:
            return jsonify(list(state.requests))
