"""The benchmark's steady measures: Python function calls a request makes in the worker's app, counted
by cProfile, for the floor and both proxy APIs, and the calls a request's record costs the batch write;
and the CPU time a request takes with the app warm, one request at a time.

Wall-clock and CPU times under load on a shared machine drift by half within minutes; a call count does
not, and a warm request's CPU time drifts by a few per cent, so they show what a change to the request
path saves. Run by scripts/benchmark.py:

    .venv/bin/python scripts/bench_calls.py EMULATOR_URL API_KEY MODEL
"""
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUESTS = 300  # counted; the counts are the same for every request once the app is warm
WARM_UP = 30  # connections opened, caches filled, lazy imports done
TIMED_RUNS = 5  # of REQUESTS each; the least CPU is the run least disturbed by the machine's other work


def _environ(path, body, key):
    """A WSGI environ template for a JSON POST, as Gunicorn would hand it over."""
    from werkzeug.test import EnvironBuilder

    return EnvironBuilder(path=path, method="POST", data=body, environ_base={"REMOTE_ADDR": "127.0.0.1"},
                          headers={"x-goog-api-key": key, "Content-Type": "application/json"}).get_environ()


def _serve(app, template, body):
    environ = dict(template, **{"wsgi.input": io.BytesIO(body)})
    status = []
    answer = app(environ, lambda line, headers, exc_info=None: status.append(line))
    for _ in answer:
        pass
    if hasattr(answer, "close"):
        answer.close()  # the record is made here, after the last byte
    if not status[0].startswith("200"):
        raise RuntimeError(f"{environ['PATH_INFO']} answered {status[0]}")


def calls_of(function):
    profile = cProfile.Profile()
    profile.enable()
    function()
    profile.disable()
    return pstats.Stats(profile).total_calls


def cpu_ms_of(app, template, body, writer):
    """The CPU time of a request in ms (the emulator's excluded), serving REQUESTS one after another."""
    runs = []
    for _ in range(TIMED_RUNS):
        started = time.process_time()
        for _ in range(REQUESTS):
            _serve(app, template, body)
        runs.append((time.process_time() - started) * 1000 / REQUESTS)
        if writer is not None:
            writer.flush()
    return min(runs)


def count(app, path, body, key, writer=None):
    """(calls a request, calls a record costs the batch write, CPU ms a warm request) at `path`."""
    template = _environ(path, body, key)
    for _ in range(WARM_UP):
        _serve(app, template, body)
    if writer is not None:
        writer.flush()
    per_request = calls_of(lambda: [_serve(app, template, body) for _ in range(REQUESTS)]) / REQUESTS
    per_record = calls_of(writer.flush) / REQUESTS if writer is not None else None
    return per_request, per_record, cpu_ms_of(app, template, body, writer)


def main(emulator_url, key, model):
    work = tempfile.mkdtemp(prefix="bench-calls-")
    os.environ.update(GEMINI_API_KEY=key, GEMINI_BASE_URL=emulator_url, GEMINI_MODELS=model, LOG_LEVEL="WARNING",
                      DATABASE_URL=f"sqlite:///{work}/proxy.db", ROLLUP_INTERVAL_SECONDS="0",
                      PROMETHEUS_MULTIPROC_DIR=work)
    sys.path.insert(0, ROOT)
    from app import create_app
    from scripts.bench_floor import app as floor

    proxy = create_app()  # a worker's app, from the environment
    writer = proxy.extensions["records"]
    writer.close()  # the background loop stops: records wait in the spool for the counted flush
    native_path = f"/v1beta/models/{model}:generateContent"
    native = json.dumps({"contents": [{"parts": [{"text": "Write one short sentence about the sea."}]}]}).encode()
    generate = json.dumps({"prompt": {"text": "Write one short sentence about the sea."}}).encode()
    results = {
        "floor": count(floor, native_path, native, key),
        "pass-through": count(proxy, native_path, native, key, writer),
        "/gemini/generate": count(proxy, "/gemini/generate", generate, key, writer),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:4])
