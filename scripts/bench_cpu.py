"""CPU per request at saturation against the floor: the floor and both proxy APIs served by one Gunicorn gevent
worker each, no upstream latency, 10 at a time, in rounds that take turns, so that the machine's drift
hits every path alike; each round's ratio to the floor, and their median and range.

    .venv/bin/python scripts/bench_cpu.py [--rounds 5] [--requests 600]

Where the time goes is for cProfile in one process (scripts/bench_calls.py serves the same app warm).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (patches the standard library for gevent first)

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402

from benchmark import FLOOR, KEY, MODEL, cpu_seconds, paths, processes, run  # noqa: E402

CONCURRENCY = 10


def start(work):
    """(emulator, proxy, floor), each server one Gunicorn gevent worker, as scripts/benchmark.py starts them."""
    emulator = processes.start_emulator(work, [KEY])
    settings = dict(GEMINI_API_KEY=KEY, GEMINI_BASE_URL=emulator.url, GEMINI_MODELS=MODEL,
                    DATABASE_URL=f"sqlite:///{work}/proxy.db", ACCESS_LOG="false", ROLLUP_INTERVAL_SECONDS=0)
    proxy = processes.start_gunicorn(work, WEB_CONCURRENCY=1, **settings)
    floor = processes.start_gunicorn(work, app="scripts.bench_floor:app", WEB_CONCURRENCY=1,
                                     GEMINI_BASE_URL=emulator.url, ACCESS_LOG="false")
    for server in (proxy, floor):
        server.wait_ready(log_marker="Worker ready")
        (server.worker,) = processes.workers_of(server.proc.pid)
    return emulator, proxy, floor


def rounds(every, count, total):
    """{path: [CPU ms a request, a round]}: `total` requests a path a round, the paths taking turns."""
    headers = {"x-goog-api-key": KEY}
    measured = {name: [] for name, *_ in every}
    for _ in range(count):
        for name, url, body, worker in every:
            before = cpu_seconds(worker)
            latencies, failed, _, _ = run(url, body, CONCURRENCY, total, headers)
            if failed:
                raise RuntimeError(f"{name}: {len(failed)} failed ({failed[:3]})")
            measured[name].append((cpu_seconds(worker) - before) * 1000 / total)
    return measured


def ratios(measured):
    """{path: (each round's ratio to that round's floor)} for the paths other than the floor."""
    floor = measured[FLOOR]
    return {name: [mine / theirs for mine, theirs in zip(values, floor)]
            for name, values in measured.items() if name != FLOOR}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=600, help="a path's requests in each round")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-cpu-")
    emulator, proxy, floor = start(work)
    try:
        every = [row for row in paths(emulator, proxy, floor, floor)
                 if row[0] in (FLOOR, "pass-through", "/gemini/generate")]
        rounds(every, 1, args.requests // 2)  # warm: connections opened, lazy imports done
        measured = rounds(every, args.rounds, args.requests)
        for name, values in measured.items():
            print(f"{name:28} CPU a request, ms: median {statistics.median(values):.3f}  rounds "
                  + " ".join(f"{value:.3f}" for value in values))
        for name, values in ratios(measured).items():
            print(f"{name:28} against the floor: median {statistics.median(values):.2f}x  range "
                  f"{min(values):.2f}-{max(values):.2f}x  rounds " + " ".join(f"{value:.2f}" for value in values))
    finally:
        for server in (proxy, floor, emulator):
            server.stop()


if __name__ == "__main__":
    main()
