"""Load benchmark: the proxy (Gunicorn gevent) against calling the Gemini emulator directly, measured in
the same run by the same client, written to BENCHMARKS.md as ratios and differences.

    .venv/bin/python scripts/benchmark.py [--quick] [--only live|tls] [--analytics-rows 1000000] [--output BENCHMARKS.md]
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import gevent  # noqa: E402
import requests  # noqa: E402
import simple_websocket  # noqa: E402
import urllib3  # noqa: E402
from gevent.pool import Pool  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import processes  # noqa: E402

import bench_tls  # noqa: E402  (scripts/, beside this file; it reads this module's helpers as `benchmark`)

KEY = "bench-key-0000000001"
MODEL = "gemini-2.5-flash"
NATIVE = {"contents": [{"parts": [{"text": "Write one short sentence about the sea."}]}]}
GENERATE = {"prompt": {"text": "Write one short sentence about the sea."}}


def percentile(values, point):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(point / 100 * len(ordered))) - 1] * 1000 if ordered else float("nan")


def session(size):
    http = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=size)
    http.mount("http://", adapter)
    return http


def run(url, body, concurrency, total, headers=None, http=None):
    """`total` POSTs, `concurrency` at a time; returns (latencies in s, failures, wall seconds, the
    perf_counter time each answer finished). A bare urllib3 client: the lighter the client, the more of
    this shared machine's CPU the servers get. `http`: a warm pool to reuse (TLS connections kept open
    between rounds), else a new one."""
    http = http or urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    latencies, failures, finished = [], [], []

    def one(_):
        started = time.perf_counter()
        try:
            response = http.request("POST", url, body=payload, headers=headers, timeout=120)
        except urllib3.exceptions.HTTPError as exc:
            failures.append(type(exc).__name__)
            return
        if response.status != 200:
            failures.append(response.status)
            return
        finished.append(time.perf_counter())
        latencies.append(finished[-1] - started)

    began = time.perf_counter()
    Pool(concurrency).map(one, range(total))
    return latencies, failures, time.perf_counter() - began, finished


def stream(url, headers, count=20):
    """Time to first event and to last byte of `count` SSE streams, one after another."""
    http, first, last = session(1), [], []
    for _ in range(count):
        started = time.perf_counter()
        with http.post(url, json=NATIVE, headers=headers, stream=True, timeout=120) as response:
            seen = None
            for chunk in response.iter_content(chunk_size=None):
                if seen is None and b"data:" in chunk:
                    seen = time.perf_counter() - started
            last.append(time.perf_counter() - started)
            first.append(seen)
    return first, last


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def control(emulator, what, payload):
    requests.post(f"{emulator.url}/_emulator/{what}", json=payload, timeout=10).raise_for_status()


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory = next(int(line.split()[1]) // 1024 // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return f"{os.cpu_count()} × {cpu}, {memory} GiB, Python {platform.python_version()}, {platform.platform()}"


# The emulator's latency in the latency table, drawn from 50 ± 25 ms: Gemini itself takes far longer,
# and a constant latency would keep the clients in lock-step, every answer arriving at once.
UPSTREAM_MS, UPSTREAM_JITTER_MS = 50, 25


def cpu_seconds(pid):
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOOR = "floor: bare Flask forwarder"
RELAY = "relay: TCP bytes, no HTTP"


def start_relay(work, emulator):
    """scripts/bench_relay.py in front of the emulator."""
    port = processes.free_port()
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_relay.py")
    relay = processes.Process("relay", [sys.executable, script, str(port), "127.0.0.1", emulator.url.rsplit(":", 1)[1]],
                              processes.base_env(), work, f"http://127.0.0.1:{port}/_emulator/stats",
                              os.path.join(work, "relay.log"))
    relay.url, relay.worker = f"http://127.0.0.1:{port}", relay.proc.pid
    return relay.wait_ready()


def paths(emulator, proxy, floor, relay):
    """(name, url, body, the serving process's pid) for the direct path, the relay, the floor and both
    proxy APIs."""
    return (("direct", f"{emulator.url}/v1beta/models/{MODEL}:generateContent", NATIVE, None),
            (RELAY, f"{relay.url}/v1beta/models/{MODEL}:generateContent", NATIVE, relay.worker),
            (FLOOR, f"{floor.url}/v1beta/models/{MODEL}:generateContent", NATIVE, floor.worker),
            ("pass-through", f"{proxy.url}/v1beta/models/{MODEL}:generateContent", NATIVE, proxy.worker),
            ("/gemini/generate", f"{proxy.url}/gemini/generate", GENERATE, proxy.worker))


ROUNDS = 3  # each level's requests in this many rounds, the paths taking turns, so drift hits all alike


def latency_table(emulator, proxy, floor, relay, levels, totals):
    """Added latency at each concurrency, with UPSTREAM_MS ± UPSTREAM_JITTER_MS of upstream latency."""
    control(emulator, "config", {"latency_ms": UPSTREAM_MS, "latency_jitter_ms": UPSTREAM_JITTER_MS})
    headers = {"x-goog-api-key": KEY}
    rows = []
    for concurrency in levels:
        total = totals(concurrency)
        every = paths(emulator, proxy, floor, relay)
        for _, url, body, _ in every:  # as many connections open on every hop as the level will use
            run(url, body, concurrency, concurrency, headers)
        seen = {name: ([], [], 0.0) for name, *_ in every}
        p50s = {name: [] for name, *_ in every}  # each round's, to show how far the machine moves them
        for turn in range(ROUNDS):
            for name, url, body, _ in every:
                # Every path draws the same upstream latencies, so the percentiles differ by the proxy alone.
                control(emulator, "config", {"latency_seed": concurrency * ROUNDS + turn})
                values, failed, wall, _ = run(url, body, concurrency, total // ROUNDS, headers)
                latencies, failures, walls = seen[name]
                seen[name] = (latencies + values, failures + failed, walls + wall)
                p50s[name].append(percentile(values, 50))
        direct, d_fail, d_wall = seen["direct"]
        for name, *_ in every[1:]:
            values, failed, wall = seen[name]
            by_round = [mine - theirs for mine, theirs in zip(p50s[name], p50s["direct"])]
            rows.append({
                "added_p50_rounds": (min(by_round), max(by_round)),
                "concurrency": concurrency, "path": name, "requests": total // ROUNDS * ROUNDS,
                "failed": len(failed) + len(d_fail),
                "direct_p50": percentile(direct, 50), "direct_p99": percentile(direct, 99),
                "proxy_p50": percentile(values, 50), "proxy_p99": percentile(values, 99),
                "added_p50": percentile(values, 50) - percentile(direct, 50),
                "added_p99": percentile(values, 99) - percentile(direct, 99),
                "throughput_ratio": d_wall / wall,
            })
            print(f"c={concurrency:<4} {name:17} p50 +{rows[-1]['added_p50']:.2f} ms  p99 +{rows[-1]['added_p99']:.2f} ms"
                  f"  failed {rows[-1]['failed']}", flush=True)
    control(emulator, "config", {"latency_ms": 0, "latency_jitter_ms": 0})
    return rows


def saturation_table(emulator, proxy, floor, relay, total):
    """No upstream latency, 10 at a time: the most one worker serves, and its CPU per request, the paths
    taking turns in ROUNDS rounds; each round's CPU against that round's floor, so drift hits all alike."""
    headers = {"x-goog-api-key": KEY}
    every = paths(emulator, proxy, floor, relay)
    for _, url, body, _ in every:
        run(url, body, 10, 50, headers)
    seen = {name: ([], [], 0.0, []) for name, *_ in every}  # latencies, failures, wall, CPU ms a round
    for _ in range(ROUNDS):
        for name, url, body, worker in every:
            before = cpu_seconds(worker) if worker else 0
            latencies, failed, wall, _ = run(url, body, 10, total // ROUNDS, headers)
            done, failures, walls, cpus = seen[name]
            if worker:
                cpus.append((cpu_seconds(worker) - before) * 1000 / (total // ROUNDS))
            seen[name] = (done + latencies, failures + failed, walls + wall, cpus)
    floor_cpus = seen[FLOOR][3]
    rows = []
    for name, *_ in every:
        latencies, failed, wall, cpus = seen[name]
        against = [mine / theirs for mine, theirs in zip(cpus, floor_cpus)] if cpus and name != FLOOR else None
        rows.append({"path": name, "throughput": len(latencies) / wall, "failed": len(failed),
                     "cpu_ms": statistics.median(cpus) if cpus else None,
                     "against_floor": (statistics.median(against), min(against), max(against)) if against else None})
    return rows


def counted_calls(emulator):
    """Python function calls a request costs the floor and each API, its record the batch write, and the CPU
    time of a warm request (scripts/bench_calls.py, in its own process): steady on a noisy machine."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_calls.py")
    result = subprocess.run([sys.executable, script, emulator.url, KEY, MODEL], check=True, capture_output=True,
                            text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


CAPACITY_IN_FLIGHT = 500
CAPACITY_ROUNDS = 8  # the worker holds 500 in flight for this many upstream latencies on end
# Upstream latency 1 s ± 250 ms: the mean keeps the ideal at 500/s, and the spread keeps the 500 from
# moving in one wave, which no real traffic does.
CAPACITY_LATENCY_MS, CAPACITY_JITTER_MS = 1000, 250


def steady_throughput(finished, margin=1.0):
    """Answers per second between the first answer and the last, less `margin` seconds at each end:
    the rate the worker sustains, without the ramp of opening 500 connections and the last stragglers."""
    finished = sorted(finished)
    low, high = finished[0] + margin, finished[-1] - margin
    return sum(1 for moment in finished if low <= moment <= high) / (high - low)


def held_in_flight(emulator, worker, name, url, body, headers, idle_rss):
    """Keep CAPACITY_IN_FLIGHT requests in flight against 1 s of upstream latency; the throughput the
    one worker sustains, against the ideal (in flight ÷ latency), and its peak memory meanwhile."""
    control(emulator, "reset", {})  # peak_in_flight counts this run only
    control(emulator, "config", {"latency_ms": CAPACITY_LATENCY_MS, "latency_jitter_ms": CAPACITY_JITTER_MS,
                                 "latency_seed": 1})
    peak_rss = [idle_rss]
    sampler = gevent.spawn(lambda: [peak_rss.append(rss_mib(worker)) or gevent.sleep(0.1) for _ in range(600)])
    held, failed, _, finished = run(url, body, CAPACITY_IN_FLIGHT, CAPACITY_IN_FLIGHT * CAPACITY_ROUNDS, headers)
    sampler.kill()
    stats = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()
    return {"path": name, "peak_at_upstream": stats.get("peak_in_flight"), "ok": len(held), "failed": len(failed),
            "throughput": steady_throughput(finished), "ideal": CAPACITY_IN_FLIGHT / (CAPACITY_LATENCY_MS / 1000),
            "peak_rss": max(peak_rss)}


def analytics_timings(rows_count):
    """Seed a fresh SQLite file with `rows_count` requests over 30 days and time every report."""
    folder = tempfile.mkdtemp(prefix="bench-analytics-")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder}/analytics.db", "GEMINI_API_KEY": KEY}
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([flask, "--app", "wsgi", "ops", "seed", "--rows", str(rows_count), "--days", "30"],
                   env=env, cwd=root, check=True)
    script = f"""
import json, time
from datetime import datetime, timedelta, timezone
from app import create_app
app = create_app({{"SQLALCHEMY_DATABASE_URI": "sqlite:///{folder}/analytics.db", "GEMINI_API_KEY": "x"}})
client = app.test_client()
since = (datetime.now(timezone.utc) - timedelta(days=30)).replace(tzinfo=None).isoformat() + "Z"
out = []
for path in ["summary", "usage?group_by=model", "usage?group_by=hour", "performance", "errors", "fallbacks",
             "costs", "anomalies", "requests"]:
    for label, extra in (("24 h", ""), ("30 days", "from=" + since)):
        url = "/analytics/" + path + (("&" if "?" in path else "?") + extra if extra else "")
        best = min((lambda t: (client.get(url), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
        out.append([path, label, round(best * 1000, 1)])
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, check=True, capture_output=True,
                            text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the Live API -----------------------------------------------------------------------------------------

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
LIVE_MODEL = "gemini-live-2.5-flash-preview"
LIVE_SETUP = json.dumps({"setup": {"model": f"models/{LIVE_MODEL}",
                                   "generationConfig": {"responseModalities": ["TEXT"]}}})
LIVE_TURN = json.dumps({"clientContent": {"turns": [{"role": "user",
                                                     "parts": [{"text": "Say one thing about the sea."}]}],
                                          "turnComplete": True}})
LIVE_STEP_SECONDS = 30  # the most one step of a session (connect and setup, or a turn) may take
LIVE_OPEN_SECONDS = 120  # the most all of a level's sessions may take to open and answer their turn
LIVE_HOLD_SECONDS = 5  # how long a level's sessions stay open, idle, while the worker's CPU is measured
LIVE_SETTLE_SECONDS = 20  # the most the worker may take to let go of a level's sockets once they close


class LiveFailed(Exception):
    """A benchmark session that did not get what it asked for; the message says which step."""


def ws_url(server):
    return server.url.replace("http://", "ws://") + LIVE_PATH


def live_open(url, headers):
    """A raw WebSocket session with its setup answered: (the socket, seconds to setupComplete)."""
    started = time.perf_counter()
    try:
        ws = simple_websocket.Client.connect(url, headers=headers)
    except simple_websocket.ConnectionError as exc:
        raise LiveFailed(f"upgrade refused {exc.status_code}") from None
    except OSError as exc:
        raise LiveFailed(f"connect {type(exc).__name__}") from None
    try:
        ws.send(LIVE_SETUP)
        first = ws.receive(timeout=LIVE_STEP_SECONDS)
    except simple_websocket.ConnectionClosed as closed:
        raise LiveFailed(f"closed at setup {closed.reason}") from None
    if first is None or "setupComplete" not in json.loads(first):
        ws.close()
        raise LiveFailed("setup unanswered" if first is None else "setup answered without setupComplete")
    return ws, time.perf_counter() - started


def live_turn(ws):
    """One text turn, read to its turnComplete: seconds from sending it to the first serverContent."""
    started, first = time.perf_counter(), None
    try:
        ws.send(LIVE_TURN)
        while True:
            raw = ws.receive(timeout=LIVE_STEP_SECONDS)
            if raw is None:
                raise LiveFailed("turn unanswered")
            content = json.loads(raw).get("serverContent")
            if content is not None and first is None:
                first = time.perf_counter() - started
            if content and content.get("turnComplete"):
                return first
    except simple_websocket.ConnectionClosed as closed:
        raise LiveFailed(f"closed in the turn {closed.reason}") from None


def live_paths(emulator, proxy):
    """(name, url, headers): the emulator direct with the key, and the proxy on its pool key."""
    return (("direct", ws_url(emulator), {"x-goog-api-key": KEY}), ("proxy", ws_url(proxy), {}))


def live_latency(emulator, proxy, turns):
    """Time to setupComplete of a session opened alone, and to the first serverContent of a turn, direct and
    through the proxy: `turns` of each, in ROUNDS rounds taking turns, the turns in a fresh session a round
    (its first turn not counted), UPSTREAM_MS of Live latency before each answer."""
    control(emulator, "config", {"live_latency_ms": UPSTREAM_MS})
    names = [name for name, *_ in live_paths(emulator, proxy)]
    seen = {(name, what): [] for name in names for what in ("setup", "turn")}
    p50s = {key: [] for key in seen}
    for _ in range(ROUNDS):
        for name, url, headers in live_paths(emulator, proxy):
            setups = []
            for _ in range(turns // ROUNDS):
                ws, setup = live_open(url, headers)
                ws.close()
                setups.append(setup)
            ws, _ = live_open(url, headers)
            live_turn(ws)
            values = [live_turn(ws) for _ in range(turns // ROUNDS)]
            ws.close()
            for what, samples in (("setup", setups), ("turn", values)):
                seen[name, what] += samples
                p50s[name, what].append(percentile(samples, 50))
    control(emulator, "config", {"live_latency_ms": 0})
    rows = []
    for what in ("setup", "turn"):
        by_round = [mine - theirs for mine, theirs in zip(p50s["proxy", what], p50s["direct", what])]
        row = {"what": what, "count": len(seen["proxy", what]), "added_p50_rounds": (min(by_round), max(by_round))}
        for name in names:
            row[f"{name}_p50"], row[f"{name}_p95"] = percentile(seen[name, what], 50), percentile(seen[name, what], 95)
        row["added_p50"], row["added_p95"] = row["proxy_p50"] - row["direct_p50"], row["proxy_p95"] - row["direct_p95"]
        print(f"live {what} x{row['count']}  p50 +{row['added_p50']:.2f} ms  p95 +{row['added_p95']:.2f} ms",
              flush=True)
        rows.append(row)
    return rows


def worker_open_files(pid):
    """The worker's own limit on open files (soft, hard), as /proc says."""
    with open(f"/proc/{pid}/limits") as handle:
        line = next(line for line in handle if line.startswith("Max open files"))
    return tuple(int(value) for value in line.split()[3:5])


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def live_records(database):
    """How the proxy's Live session records so far ended (finish_reason: count)."""
    with sqlite3.connect(database) as db:
        return Counter(dict(db.execute("SELECT finish_reason, count(*) FROM request_log WHERE route LIKE '/ws/%' "
                                       "GROUP BY finish_reason").fetchall()))


def live_rush(url, headers, count, held=None):
    """`count` sessions opened at once, each its setup and one turn: (setup seconds, first-message seconds,
    failures by step); the sockets kept in `held`, or closed at once."""
    setups, turns, failures, opened = [], [], Counter(), []

    def one():
        try:
            with gevent.Timeout(LIVE_OPEN_SECONDS, LiveFailed("timed out")):
                ws, setup = live_open(url, headers)
                opened.append(ws)
                setups.append(setup)
                turns.append(live_turn(ws))
        except LiveFailed as exc:
            failures[str(exc)] += 1

    gevent.joinall([gevent.spawn(one) for _ in range(count)], timeout=LIVE_OPEN_SECONDS + 10)
    if held is None:
        for ws in opened:
            ws.close()
    else:
        held += opened
    return setups, turns, failures


def wait_for_records(database, count):
    """Until the proxy has written `count` Live session records (they are written in batches), or a while."""
    deadline = time.monotonic() + LIVE_SETTLE_SECONDS
    while time.monotonic() < deadline and live_records(database).total() < count:
        gevent.sleep(0.5)
    return live_records(database)


def live_held(emulator, proxy, database, count, recorded):
    """`count` sessions opened through the proxy at once, each its setup and one turn, then held open: how
    many the one worker answered, its memory, sockets and idle CPU with them open, and after they close.
    The same rush straight to the emulator first, for the client's own share. `recorded`: the proxy's
    session records so far."""
    worker = proxy.worker
    control(emulator, "config", {"live_latency_ms": UPSTREAM_MS})
    d_setups, d_turns, d_failures = live_rush(ws_url(emulator), {"x-goog-api-key": KEY}, count)
    records_before = wait_for_records(database, recorded)
    idle_rss, idle_fds = rss_mib(worker), open_fds(worker)
    held = []
    peak_rss = [idle_rss]
    sampler = gevent.spawn(lambda: [peak_rss.append(rss_mib(worker)) or gevent.sleep(0.1) for _ in range(3000)])
    pids = (worker, emulator.proc.pid, os.getpid())  # who used the machine's cores meanwhile
    began, cpu_began = time.perf_counter(), [cpu_seconds(pid) for pid in pids]
    setups, turns, failures = live_rush(ws_url(proxy), {}, count, held)
    opened_in = time.perf_counter() - began
    rush_cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_began)]
    upstream_open = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()["in_flight"]
    cpu_before = cpu_seconds(worker)
    gevent.sleep(LIVE_HOLD_SECONDS)
    idle_cpu = (cpu_seconds(worker) - cpu_before) / LIVE_HOLD_SECONDS
    open_rss, open_fds_count = rss_mib(worker), open_fds(worker)
    sampler.kill()
    dropped = 0  # sessions the proxy (or the emulator) closed while they idled
    for ws in held:
        try:
            ws.close()
        except simple_websocket.ConnectionClosed:
            dropped += 1
    deadline = time.monotonic() + LIVE_SETTLE_SECONDS
    while time.monotonic() < deadline and open_fds(worker) > idle_fds:
        gevent.sleep(0.5)
    records = wait_for_records(database, records_before.total() + count) - records_before
    gevent.sleep(1)  # the emulator's own closes
    control(emulator, "config", {"live_latency_ms": 0})
    row = {"sessions": count, "setup_ok": len(setups), "turn_ok": len(turns), "failures": dict(failures),
           "dropped": dropped, "opened_in": opened_in,
           "setup_p50": percentile(setups, 50), "setup_p95": percentile(setups, 95),
           "turn_p50": percentile(turns, 50), "turn_p95": percentile(turns, 95), "upstream_open": upstream_open,
           "direct_ok": len(d_turns), "direct_failed": sum(d_failures.values()),
           "direct_setup_p50": percentile(d_setups, 50), "direct_setup_p95": percentile(d_setups, 95),
           "direct_turn_p50": percentile(d_turns, 50), "direct_turn_p95": percentile(d_turns, 95),
           "idle_rss": idle_rss, "open_rss": open_rss, "peak_rss": max(peak_rss), "idle_fds": idle_fds,
           "open_fds": open_fds_count, "idle_cpu": idle_cpu, "after_rss": rss_mib(worker),
           "after_fds": open_fds(worker),
           "after_upstream": requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()["in_flight"],
           "records": dict(records)}
    row["kib_a_session"] = (open_rss - idle_rss) * 1024 / max(1, len(setups))
    row["cpu_ms_a_session"] = rush_cpu[0] * 1000 / max(1, len(setups))
    row["rush_cpu"] = rush_cpu
    print(f"live sessions {count}: setup {len(setups)} turn {len(turns)} failed {dict(failures)} "
          f"rss {idle_rss:.0f}->{open_rss:.0f} MiB fds {idle_fds}->{open_fds_count}->{row['after_fds']} "
          f"records {dict(records)}", flush=True)
    return row


def live_bench(emulator, proxy, database, quick):
    """The Live rows: added latency to a turn's first message, and the sessions one worker holds."""
    turns = 30 if quick else 300
    load = os.getloadavg()[0]
    latency = live_latency(emulator, proxy, turns)
    recorded = ROUNDS * (turns // ROUNDS + 1)  # the latency rows' sessions through the proxy: its setups and turns
    # 500 twice: whether the worker's memory comes back to where it was, or grows with every 500.
    levels = (20, 50) if quick else (50, 200, 500, 500, 1000)
    held = [live_held(emulator, proxy, database, count, recorded + sum(levels[:number]))
            for number, count in enumerate(levels)]
    return {"latency": latency, "held": held,
            "ulimit": resource.getrlimit(resource.RLIMIT_NOFILE), "worker_ulimit": worker_open_files(proxy.worker),
            "run": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "load": (load, os.getloadavg()[0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level (a smoke run)")
    parser.add_argument("--only", choices=["live", "tls"], help="run this section alone and replace it in the output")
    parser.add_argument("--analytics-rows", type=int, default=0, help="seed this many rows and time the reports")
    parser.add_argument("--output", default=os.path.join(processes.ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-")
    # No per-client bound on Live sessions (10 by default): the Live rows measure the worker, not the limit.
    base = dict(GEMINI_API_KEY=KEY, GEMINI_MODELS=MODEL, ACCESS_LOG="false", ROLLUP_INTERVAL_SECONDS=0,
                LIVE_SESSIONS_PER_CLIENT=0)
    if args.only == "tls":
        return replace_section(args.output, bench_tls.TLS_HEADING,
                               bench_tls.tls_section(args, bench_tls.tls_bench(work, args.quick, base)))
    emulator = processes.start_emulator(work, [KEY])
    proxy = floor = relay = None
    try:
        settings = dict(base, GEMINI_BASE_URL=emulator.url, DATABASE_URL=f"sqlite:///{work}/proxy.db")
        proxy = processes.start_gunicorn(work, WEB_CONCURRENCY=1, **settings)
        proxy.wait_ready(log_marker="Worker ready")
        (worker,) = processes.workers_of(proxy.proc.pid)
        proxy.worker = worker
        if args.only == "live":
            live = live_bench(emulator, proxy, f"{work}/proxy.db", args.quick)
            return replace_section(args.output, LIVE_HEADING, live_section(args, live))
        floor = processes.start_gunicorn(work, app="scripts.bench_floor:app", WEB_CONCURRENCY=1,
                                         GEMINI_BASE_URL=emulator.url, ACCESS_LOG="false")
        floor.wait_ready(log_marker="Worker ready")
        (floor.worker,) = processes.workers_of(floor.proc.pid)
        relay = start_relay(work, emulator)
        idle_rss = rss_mib(worker)

        totals = (lambda c: max(50, c * 2)) if args.quick else (lambda c: max(300, c * 4))
        latency = latency_table(emulator, proxy, floor, relay, (1, 10, 100, 500), totals)
        saturation = saturation_table(emulator, proxy, floor, relay, 500 if args.quick else 3000)
        calls = counted_calls(emulator)

        control(emulator, "config", {"stream_chunk_delay_ms": 20, "stream_chunk_words": 4})
        headers = {"x-goog-api-key": KEY}
        path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        d_first, d_last = stream(emulator.url + path, headers)
        p_first, p_last = stream(proxy.url + path, headers)

        capacity = [held_in_flight(emulator, worker, name, url, body, headers, idle_rss)
                    for name, url, body, _ in paths(emulator, proxy, floor, relay)]
        control(emulator, "config", {"latency_ms": 0, "latency_jitter_ms": 0})
        big = {"contents": [{"parts": [{"text": "[[big-chunk:8000000]] tell me"}]}]}
        stream_rss = [rss_mib(worker)]
        sampler = gevent.spawn(lambda: [stream_rss.append(rss_mib(worker)) or gevent.sleep(0.05) for _ in range(400)])
        with requests.post(proxy.url + path, json=big, headers=headers, stream=True, timeout=120) as response:
            streamed_bytes = sum(len(chunk) for chunk in response.iter_content(chunk_size=65536))
        sampler.kill()
        control(emulator, "config", {"stream_chunk_delay_ms": 0})
        live = live_bench(emulator, proxy, f"{work}/proxy.db", args.quick)

        analytics = analytics_timings(args.analytics_rows) if args.analytics_rows else None
    finally:
        for server in (proxy, floor, relay):
            if server:
                server.stop()
        emulator.stop()

    write_report(args, latency, saturation, calls, (d_first, d_last, p_first, p_last), capacity,
                 (idle_rss, max(row["peak_rss"] for row in capacity), max(stream_rss), streamed_bytes), live,
                 analytics)
    # Its own processes (an HTTP/2 TLS front, a proxy for each protocol), after the others have stopped.
    replace_section(args.output, bench_tls.TLS_HEADING,
                    bench_tls.tls_section(args, bench_tls.tls_bench(work, args.quick, base)))


LIVE_HEADING = "## Live API"


def live_section(args, live):
    """The Live rows, with the run they came from (a `--only live` run replaces them alone)."""
    soft, hard = live["worker_ulimit"]
    repeated = [row["sessions"] for row in live["held"]]
    repeated = {count for count in repeated if repeated.count(count) > 1}
    twice = "".join(f"{count} comes twice, to show whether the worker's memory grows with every {count} or is "
                    "reused; " for count in sorted(repeated))
    command = f"python scripts/benchmark.py{' --quick' if args.quick else ''}{' --only live' if args.only else ''}"
    labels = {"setup": "setupComplete after the client's setup, a session opened alone",
              "turn": "first serverContent after the client's turn"}
    lines = [
        f"{LIVE_HEADING} (the WebSocket relay; a raw `ws://` client, text turns, {UPSTREAM_MS} ms of Live latency "
        "before each answer)",
        "",
        f"Run {live['run']} with `{command}`, on the machine above, the same one worker. The client is "
        "`simple_websocket` on gevent, in the benchmark's process. The machine's load average (1 min) was "
        f"{live['load'][0]:.1f} as the Live rows began and {live['load'][1]:.1f} as they ended, on "
        f"{os.cpu_count()} cores: other work on it moves these times.",
        "",
        "| time to | count | direct p50 ms | proxy p50 ms | added p50 ms | added p50 by round, ms | direct p95 ms "
        "| proxy p95 ms | added p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {labels[row['what']]} | {row['count']} | {row['direct_p50']:.2f} | {row['proxy_p50']:.2f} | "
          f"**{row['added_p50']:.2f}** | {row['added_p50_rounds'][0]:.2f} to {row['added_p50_rounds'][1]:.2f} | "
          f"{row['direct_p95']:.2f} | {row['proxy_p95']:.2f} | **{row['added_p95']:.2f}** |"
          for row in live["latency"]],
        "",
        f"{ROUNDS} rounds, direct to the emulator and through the proxy taking turns in each. The setup is timed "
        "from connecting (the upgrade included) to `setupComplete`, a session at a time, each closed at once. The "
        "turns run in one session a path a round, its first turn not counted; each is timed from sending "
        "`clientContent` (turnComplete) to the first `serverContent` message of the answer, read on to its "
        "turnComplete before the next turn.",
        "",
        "| sessions opened at once | setupComplete | turn answered | failed | closed while idle "
        "| all opened and answered in, s | CPU meanwhile, s: worker / emulator / client "
        "| worker CPU a session (setup and turn), ms | setupComplete p50 / p95 ms, direct | proxy "
        "| first message p50 / p95 ms, direct | proxy | open at the emulator, held → closed "
        "| worker RSS idle → open (peak), MiB | per session, KiB "
        "| worker CPU while they idle, % of a core | worker fds idle → open → closed | RSS after close, MiB "
        "| records (how they ended) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in live["held"]:
        failed = sum(row["failures"].values())
        why = f" ({', '.join(f'{reason}: {n}' for reason, n in row['failures'].items())})" if failed else ""
        direct = f" (direct: {row['direct_failed']})" if row["direct_failed"] else ""
        records = ", ".join(f"{how}: {n}" for how, n in sorted(row["records"].items(), key=str))
        lines.append(
            f"| {row['sessions']} | {row['setup_ok']} | {row['turn_ok']} | {failed}{why}{direct} | {row['dropped']} | "
            f"{row['opened_in']:.1f} | {' / '.join(format(cpu, '.2f') for cpu in row['rush_cpu'])} | "
            f"{row['cpu_ms_a_session']:.1f} | {row['direct_setup_p50']:.1f} / {row['direct_setup_p95']:.1f} | "
            f"{row['setup_p50']:.1f} / {row['setup_p95']:.1f} | {row['direct_turn_p50']:.1f} / "
            f"{row['direct_turn_p95']:.1f} | {row['turn_p50']:.1f} / {row['turn_p95']:.1f} | "
            f"{row['upstream_open']} → {row['after_upstream']} | {row['idle_rss']:.0f} → {row['open_rss']:.0f} "
            f"({row['peak_rss']:.0f}) | {row['kib_a_session']:.0f} | {row['idle_cpu'] * 100:.1f} | "
            f"{row['idle_fds']} → {row['open_fds']} → {row['after_fds']} | {row['after_rss']:.0f} | "
            f"{records or 'none'} |")
    lines += [
        "",
        f"Each session connects, sends its setup, waits for setupComplete and answers one turn (each step bounded "
        f"by {LIVE_STEP_SECONDS} s, the whole level by {LIVE_OPEN_SECONDS} s); the same rush straight to the "
        "emulator, closed at once, comes first, for the client's and the emulator's own share of the times. "
        f"Through the proxy the sessions then stay open, idle, for "
        f"{LIVE_HOLD_SECONDS} s while the worker's CPU is counted; then the client closes them all and the worker's "
        "sockets and the sessions' records are counted again. A session through the proxy holds two sockets in "
        "the worker (the client's and Gemini's); per session is (RSS open − RSS idle) ÷ sessions set up; "
        f"{twice}"
        "the client, the worker and the emulator share the machine's cores, so the times under a rush are theirs "
        f"together (the CPU column says who spent it). `ulimit -n` in this run: the worker's {soft} (hard {hard}), "
        f"the client's {live['ulimit'][0]}. "
        "Gunicorn's `worker_connections` (1000, `WORKER_CONNECTIONS`) is the most connections one gevent worker "
        "serves at once, and a Live session holds one for its whole life. `LIVE_SESSIONS_PER_CLIENT=0` here: with "
        "its default (10) an anonymous client's eleventh session is closed with 1013.",
    ]
    return lines


def replace_section(output, heading, section):
    """Write `section` in place of the one under `heading` in `output` (before Analytics if it has none)."""
    text = []
    if os.path.exists(output):
        with open(output) as handle:
            text = handle.read().rstrip("\n").split("\n")
    starts = [number for number, line in enumerate(text) if line.startswith(heading)]
    if starts:
        start = starts[0]
        end = next((n for n in range(start + 1, len(text)) if text[n].startswith("## ")), len(text))
    else:
        start = end = next((n for n, line in enumerate(text) if line.startswith("## Analytics")), len(text))
    head, tail = text[:start], text[end:]
    text = head + ([""] if head and head[-1] else []) + section + ([""] if tail else []) + tail
    with open(output, "w") as handle:
        handle.write("\n".join(text) + "\n")
    print(f"wrote {output} ({heading})")


def write_report(args, latency, saturation, calls, streams, capacity, memory, live, analytics):
    d_first, d_last, p_first, p_last = streams
    idle, peak, streaming, streamed_bytes = memory
    lines = [
        "# Benchmarks",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `python scripts/benchmark.py"
        f"{' --quick' if args.quick else ''}{f' --analytics-rows {args.analytics_rows}' if args.analytics_rows else ''}`"
        f" on {machine()}. One Gunicorn gevent worker; the emulator on loopback; the same gevent client "
        "measures the direct path and the proxy in the same run, so the differences are the proxy's cost on "
        "this machine (a shared, noisy one: the client, the proxy and the emulator share its cores).",
        "",
        f"## Added latency (proxy minus direct, same client, same run, {UPSTREAM_MS} ± {UPSTREAM_JITTER_MS} ms of "
        f"upstream latency, the paths taking turns in {ROUNDS} rounds)",
        "",
        "| concurrency | path | requests | direct p50 ms | proxy p50 ms | added p50 ms | added p50 by round, ms "
        "| direct p99 ms | proxy p99 ms | added p99 ms | throughput vs direct | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in latency:
        low, high = row["added_p50_rounds"]
        lines.append(f"| {row['concurrency']} | {row['path']} | {row['requests']} | {row['direct_p50']:.2f} | "
                     f"{row['proxy_p50']:.2f} | **{row['added_p50']:.2f}** | {low:.2f} to {high:.2f} | "
                     f"{row['direct_p99']:.2f} | "
                     f"{row['proxy_p99']:.2f} | **{row['added_p99']:.2f}** | {row['throughput_ratio']:.2f} | "
                     f"{row['failed']} |")
    lines += [
        "",
        "Targets at concurrency 10: added p50 ≤ 2 ms, added p99 ≤ 10 ms. Where the offered load (concurrency ÷ "
        f"{UPSTREAM_MS} ms) is beyond what one worker serves (below), the added latency is queueing for that "
        f"worker's CPU. The relay (`scripts/bench_relay.py`) copies bytes between sockets on gevent and parses no "
        "HTTP: what one more loopback hop costs on this machine. The floor (`scripts/bench_floor.py`) is a bare "
        "Flask app forwarding with urllib3 under the same Gunicorn worker, without keys, limits, records, metrics "
        "or cache: what any Flask forwarder adds on this machine. The rounds column is each round's proxy p50 "
        f"less that round's direct p50 ({ROUNDS} rounds of a third of the requests): how far this machine's other "
        "work moves the figure within one run.",
        "",
        "## Saturation (no upstream latency, 10 at a time: the most one worker serves)",
        "",
        "| path | requests/s | worker (or relay) CPU per request, ms | against the floor (its rounds' range) "
        "| failed |",
        "|---|---|---|---|---|",
        *[f"| {row['path']} | {row['throughput']:.0f} | "
          f"{'–' if row['cpu_ms'] is None else format(row['cpu_ms'], '.2f')} | "
          f"{'–' if not row['against_floor'] else '**{:.2f}×** ({:.2f}–{:.2f})'.format(*row['against_floor'])} | "
          f"{row['failed']} |" for row in saturation],
        "",
        f"The paths take turns in {ROUNDS} rounds; the CPU is the median round's, and each round's CPU is set "
        "against the floor's in the same round: the range says how far this machine's other work moves the "
        "ratio. Targets (issue 21): pass-through at most 1.6×, /gemini/generate at most 2.0×.",
        "",
        "## Work per request (Python function calls counted in the worker's app, the same on a calm machine and "
        "a noisy one; and the CPU time of a warm request, nearly so)",
        "",
        "| path | calls a request | calls its record adds to the batch write | in all | against the floor "
        "| CPU a warm request, ms | against the floor |",
        "|---|---|---|---|---|---|---|",
        *[f"| {FLOOR if path == 'floor' else path} | {request:.0f} | {'–' if record is None else format(record, '.0f')} | "
          f"{request + (record or 0):.0f} | {(request + (record or 0)) / calls['floor'][0]:.2f}× | {cpu:.3f} | "
          f"{cpu / calls['floor'][2]:.2f}× |"
          for path, (request, record, cpu) in calls.items()],
        "",
        "Counted by cProfile over 300 requests each, after 30 to warm up, with the app called as Gunicorn calls "
        "it (`scripts/bench_calls.py`). The times above vary with the machine; these counts change only with "
        "the code, so they show what a change to the request path saved. The CPU time is the least of five runs "
        "of 300 requests served one after another without the profiler, Gunicorn's HTTP parsing and the batch "
        "write not included: it moves by a few per cent from run to run, where CPU under load moves by half.",
        "",
        "## Streaming (SSE, 20 sequential streams, 20 ms between upstream chunks)",
        "",
        "| | direct ms | proxy ms | added ms |",
        "|---|---|---|---|",
        f"| time to first event, p50 | {percentile(d_first, 50):.2f} | {percentile(p_first, 50):.2f} | "
        f"{percentile(p_first, 50) - percentile(d_first, 50):.2f} |",
        f"| time to last byte, p50 | {percentile(d_last, 50):.2f} | {percentile(p_last, 50):.2f} | "
        f"{percentile(p_last, 50) - percentile(d_last, 50):.2f} |",
        "",
        f"## Capacity ({CAPACITY_IN_FLIGHT} requests kept in flight for {CAPACITY_ROUNDS} rounds, upstream latency "
        f"{CAPACITY_LATENCY_MS / 1000:g} s ± {CAPACITY_JITTER_MS} ms, one worker)",
        "",
        "| path | answered | failed | in flight at the emulator, peak | requests/s | ideal | share of ideal |",
        "|---|---|---|---|---|---|---|",
        *[f"| {row['path']} | {row['ok']} | {row['failed']} | {row['peak_at_upstream']} | {row['throughput']:.0f} | "
          f"{row['ideal']:.0f} | **{row['throughput'] / row['ideal']:.0%}** |" for row in capacity],
        "",
        "Target: at least 90% of the ideal (in flight ÷ upstream latency). The rate is counted between the first "
        "answer and the last, less a second at each end. The direct row is the emulator called by the same client: "
        "the most this machine shows.",
        "",
        "## Memory (resident set of the one worker)",
        "",
        f"- idle: {idle:.0f} MiB; peak with {CAPACITY_IN_FLIGHT} requests in flight: {peak:.0f} MiB;",
        f"- peak while streaming a {streamed_bytes / 1e6:.1f} MB response: {streaming:.0f} MiB.",
        "",
        *live_section(args, live),
    ]
    if analytics:
        lines += ["", f"## Analytics over {args.analytics_rows:,} logged requests (30 days, rolled up)", "",
                  "| report | window | ms (best of 3) |", "|---|---|---|"]
        lines += [f"| {path} | {label} | {ms} |" for path, label, ms in analytics]
    with open(args.output, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
