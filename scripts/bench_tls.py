"""The benchmark's TLS rows: Gemini reached over TLS, as in production, through an HTTP/2 front (nginx, as
tests/processes.start_h2_emulator starts it) before the emulator; the client straight to that front against
the proxy reaching it over HTTP/2 and over HTTP/1.1 (two workers, UPSTREAM_HTTP2 true and false), in the
same run. Every request's TLS connection is read from the front's access log. Run by scripts/benchmark.py
(its last section, or alone with --only tls)."""
import os
from datetime import datetime, timezone

import gevent
import requests
import trustme
import urllib3

import benchmark as bench
from tests import processes

TLS_HEADING = "## TLS and HTTP/2 to Gemini"
LEVELS = (1, 10, 100)
H2, H1 = "HTTP/2", "HTTP/1.1"


class Front:
    """The HTTP/2 TLS front and its emulator, and the connections its log shows since the last look."""

    def __init__(self, work):
        ca = trustme.CA()
        ca.cert_pem.write_to_path(os.path.join(work, "tls-ca.pem"))
        pem = os.path.join(work, "tls-server.pem")
        ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
        self.ca = os.path.join(work, "tls-ca.pem")
        self.process = processes.start_h2_emulator(work, [bench.KEY], (pem, pem))
        self.url, self.emulator = self.process.url, self.process.emulator
        self.known, self.lines = set(), 0

    def since(self):
        """(requests, connections they used, connections opened: TLS handshakes, protocols) since the last call."""
        gevent.sleep(0.5)  # nginx logs a request just after its answer left: the last ones' lines land
        seen = processes.h2_seen(self.process)[self.lines:]
        self.lines += len(seen)
        used = {entry[0] for entry in seen if "/_emulator/" not in entry[4]}
        calls = [entry for entry in seen if "/_emulator/" not in entry[4]]
        opened = used - self.known
        self.known |= used
        return len(calls), len(used), len(opened), sorted({entry[1] for entry in calls})

    def stop(self):
        self.process.stop()


def _proxies(work, front, base):
    """A one-worker proxy for each protocol to Gemini."""
    started = {}
    for protocol, flag in ((H2, "true"), (H1, "false")):
        folder = os.path.join(work, f"proxy-{flag}")
        os.makedirs(folder, exist_ok=True)
        server = processes.start_gunicorn(folder, WEB_CONCURRENCY=1, UPSTREAM_HTTP2=flag, SSL_CERT_FILE=front.ca,
                                          **dict(base, GEMINI_BASE_URL=front.url,
                                                 DATABASE_URL=f"sqlite:///{folder}/proxy.db"))
        server.wait_ready(log_marker="Worker ready")
        (server.worker,) = processes.workers_of(server.proc.pid)
        started[protocol] = server
    return started


def _paths(front, proxies):
    """(name, protocol to Gemini, url, body, worker pid or None)."""
    native = f"/v1beta/models/{bench.MODEL}:generateContent"
    every = [("direct", H1, front.url + native, bench.NATIVE, None)]
    for protocol, server in proxies.items():
        every += [("pass-through", protocol, server.url + native, bench.NATIVE, server.worker),
                  ("/gemini/generate", protocol, server.url + "/gemini/generate", bench.GENERATE, server.worker)]
    return every


def _warm(every, concurrency, headers):
    """A client pool for each path, its connections opened: every round then reuses them, as a client of
    Gemini keeps its TLS connections (the rows compare upstream protocols, not the client's handshakes)."""
    pools = {}
    for name, protocol, url, body, _ in every:
        pools[(name, protocol)] = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)
        bench.run(url, body, concurrency, concurrency, headers, http=pools[(name, protocol)])
    return pools


def _latency(front, every, quick):
    headers = {"x-goog-api-key": bench.KEY}
    bench.control(front.emulator, "config", {"latency_ms": bench.UPSTREAM_MS,
                                             "latency_jitter_ms": bench.UPSTREAM_JITTER_MS})
    rows = []
    for concurrency in LEVELS:
        total = max(30, concurrency * 2) if quick else max(300, concurrency * 4)
        pools = _warm(every, concurrency, headers)
        seen = {(name, protocol): [] for name, protocol, *_ in every}
        for turn in range(bench.ROUNDS):
            for name, protocol, url, body, _ in every:
                bench.control(front.emulator, "config", {"latency_seed": concurrency * bench.ROUNDS + turn})
                values, failed, _, _ = bench.run(url, body, concurrency, total // bench.ROUNDS, headers,
                                                 http=pools[(name, protocol)])
                seen[(name, protocol)] += values
        direct = bench.percentile(seen[("direct", H1)], 50)
        for (name, protocol), values in list(seen.items())[1:]:
            rows.append({"concurrency": concurrency, "path": name, "protocol": protocol, "direct_p50": direct,
                         "p50": bench.percentile(values, 50), "added_p50": bench.percentile(values, 50) - direct})
    bench.control(front.emulator, "config", {"latency_ms": 0, "latency_jitter_ms": 0})
    front.since()
    return rows


def _saturation(front, every, total):
    """10 at a time, no upstream latency: each path's CPU per request, and the handshakes it cost."""
    headers, rows = {"x-goog-api-key": bench.KEY}, []
    pools = _warm(every, 10, headers)
    front.since()
    for name, protocol, url, body, worker in every:
        before = bench.cpu_seconds(worker) if worker else 0
        latencies, failed, wall, _ = bench.run(url, body, 10, total, headers, http=pools[(name, protocol)])
        calls, used, opened, seen = front.since()
        rows.append({"path": name, "protocol": protocol, "throughput": len(latencies) / wall, "failed": len(failed),
                     "cpu_ms": (bench.cpu_seconds(worker) - before) * 1000 / total if worker else None,
                     "connections": used, "handshakes_per_1000": opened * 1000 / max(calls, 1), "seen": seen})
    return rows


def _held(front, every, rounds):
    """bench.CAPACITY_IN_FLIGHT requests in flight, 1 s ± 250 ms upstream: the connections they take, the
    worker's CPU per request and its peak memory, over each protocol."""
    headers, rows = {"x-goog-api-key": bench.KEY}, []
    for name, protocol, url, body, worker in every:
        bench.control(front.emulator, "reset", {})
        bench.control(front.emulator, "config", {"latency_ms": bench.CAPACITY_LATENCY_MS,
                                                 "latency_jitter_ms": bench.CAPACITY_JITTER_MS, "latency_seed": 1})
        peak, before = [0.0], bench.cpu_seconds(worker) if worker else 0
        sampler = gevent.spawn(lambda: [peak.append(bench.rss_mib(worker)) or gevent.sleep(0.1) for _ in range(900)]
                               ) if worker else None
        total = bench.CAPACITY_IN_FLIGHT * rounds
        answered, failed, _, finished = bench.run(url, body, bench.CAPACITY_IN_FLIGHT, total, headers)
        if sampler:
            sampler.kill()
        calls, used, opened, seen = front.since()
        stats = requests.get(f"{front.emulator.url}/_emulator/stats", timeout=10).json()
        rows.append({"path": name, "protocol": protocol, "ok": len(answered), "failed": len(failed),
                     "peak_at_upstream": stats["peak_in_flight"], "connections": used,
                     "handshakes_per_1000": opened * 1000 / max(calls, 1), "seen": seen,
                     "cpu_ms": (bench.cpu_seconds(worker) - before) * 1000 / total if worker else None,
                     "peak_rss": max(peak) if worker else None, "throughput": bench.steady_throughput(finished)})
    bench.control(front.emulator, "config", {"latency_ms": 0, "latency_jitter_ms": 0})
    return rows


def tls_bench(work, quick, base):
    """The TLS rows of one run; `base`, the proxy's settings but the upstream's."""
    front = Front(work)
    os.environ["SSL_CERT_FILE"] = front.ca  # the client's urllib3 verifies the front against the private CA
    proxies = {}
    load = os.getloadavg()[0]
    try:
        proxies = _proxies(work, front, base)
        every = _paths(front, proxies)
        idle = {protocol: bench.rss_mib(server.worker) for protocol, server in proxies.items()}
        latency = _latency(front, every, quick)
        saturation = _saturation(front, every, 300 if quick else 2000)
        held = _held(front, every, 2 if quick else 4)
    finally:
        for server in proxies.values():
            server.stop()
        front.stop()
    return {"latency": latency, "saturation": saturation, "held": held, "idle": idle,
            "load": (load, os.getloadavg()[0]), "run": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}


def _ratio(rows, value, path):
    """HTTP/2's `value` over HTTP/1.1's on `path`."""
    mine = {row["protocol"]: row[value] for row in rows if row["path"] == path}
    return mine[H2] / mine[H1] if mine.get(H1) else float("nan")


def tls_section(args, tls):
    command = f"python scripts/benchmark.py{' --quick' if args.quick else ''}{' --only tls' if args.only else ''}"
    lines = [
        f"{TLS_HEADING} (the emulator behind nginx serving HTTP/2 over TLS; the proxy over HTTP/2 and over "
        "HTTP/1.1, a worker each, in the same run)",
        "",
        f"Run {tls['run']} with `{command}`. The client calls the TLS front directly (HTTP/1.1 over TLS, a "
        "connection per request in flight, as a client of Gemini without the proxy would) and the two proxies "
        "over loopback HTTP; each proxy reaches the front over TLS, one with `UPSTREAM_HTTP2=true`, one with "
        "`false`. Connections and TLS handshakes are counted at the front, from each request's `$connection` "
        f"in its access log. The machine's load average (1 min) was {tls['load'][0]:.1f} as these rows began and "
        f"{tls['load'][1]:.1f} as they ended, on {os.cpu_count()} cores shared with other work: read the "
        "ratios between rows of this one run, not the absolute times.",
        "",
        f"### Added latency over TLS ({bench.UPSTREAM_MS} ± {bench.UPSTREAM_JITTER_MS} ms upstream, "
        f"{bench.ROUNDS} rounds, the paths taking turns)",
        "",
        "| concurrency | path | to Gemini | direct p50 ms (TLS) | proxy p50 ms | added p50 ms |",
        "|---|---|---|---|---|---|",
        *[f"| {row['concurrency']} | {row['path']} | {row['protocol']} | {row['direct_p50']:.2f} | {row['p50']:.2f} | "
          f"**{row['added_p50']:.2f}** |" for row in tls["latency"]],
        "",
        "### CPU per request over TLS (no upstream latency, 10 at a time)",
        "",
        "| path | to Gemini | requests/s | worker CPU per request, ms | connections used | TLS handshakes per "
        "1,000 requests | protocol the front saw | failed |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {row['path']} | {row['protocol']} | {row['throughput']:.0f} | "
          f"{'–' if row['cpu_ms'] is None else format(row['cpu_ms'], '.2f')} | {row['connections']} | "
          f"{row['handshakes_per_1000']:.1f} | {', '.join(row['seen'])} | {row['failed']} |"
          for row in tls["saturation"]],
        "",
        f"### {bench.CAPACITY_IN_FLIGHT} in flight over TLS (upstream {bench.CAPACITY_LATENCY_MS / 1000:g} s ± "
        f"{bench.CAPACITY_JITTER_MS} ms)",
        "",
        "| path | to Gemini | answered | failed | in flight at the emulator, peak | connections used | TLS handshakes "
        "per 1,000 requests | worker CPU per request, ms | worker RSS idle → peak, MiB | requests/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {row['path']} | {row['protocol']} | {row['ok']} | {row['failed']} | {row['peak_at_upstream']} | "
          f"**{row['connections']}** | {row['handshakes_per_1000']:.1f} | "
          f"{'–' if row['cpu_ms'] is None else format(row['cpu_ms'], '.2f')} | "
          f"{'–' if row['peak_rss'] is None else format(tls['idle'][row['protocol']], '.0f') + ' → ' + format(row['peak_rss'], '.0f')} | "
          f"{row['throughput']:.0f} |" for row in tls["held"]],
        "",
        "HTTP/2 against HTTP/1.1 in this run, the pass-through: CPU per request with "
        f"{bench.CAPACITY_IN_FLIGHT} in flight {_ratio(tls['held'], 'cpu_ms', 'pass-through'):.2f}×, "
        f"connections {_ratio(tls['held'], 'connections', 'pass-through'):.3f}×, worker peak RSS "
        f"{_ratio(tls['held'], 'peak_rss', 'pass-through'):.2f}×, requests/s "
        f"{_ratio(tls['held'], 'throughput', 'pass-through'):.2f}×; `/gemini/generate`: CPU "
        f"{_ratio(tls['held'], 'cpu_ms', '/gemini/generate'):.2f}×, RSS "
        f"{_ratio(tls['held'], 'peak_rss', '/gemini/generate'):.2f}×, requests/s "
        f"{_ratio(tls['held'], 'throughput', '/gemini/generate'):.2f}×. At saturation on warm connections "
        f"(no handshakes on either side) the pass-through's CPU per request over HTTP/2 is "
        f"{_ratio(tls['saturation'], 'cpu_ms', 'pass-through'):.2f}× HTTP/1.1's and `/gemini/generate`'s "
        f"{_ratio(tls['saturation'], 'cpu_ms', '/gemini/generate'):.2f}×: h2's framing is pure Python, where "
        "HTTP/1.1's parsing is the standard library's; HTTP/2 saves the handshakes and the per-connection memory "
        "of requests in flight. Both proxies share one pool of "
        "connections between their two APIs, so the `/gemini/generate` rows reuse the connections the pass-through "
        "rows opened before them; the handshakes column counts only the connections a row opened. nginx allows "
        "128 streams a connection and httpcore opens at most 100, so "
        f"{bench.CAPACITY_IN_FLIGHT} in flight need five; each of the HTTP/1.1 proxy's requests in flight holds a "
        "connection (and its TLS state) of its own.",
    ]
    return lines
