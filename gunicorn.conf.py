"""Gunicorn settings for the proxy: gevent workers, timeouts that fit the request deadline."""
import multiprocessing
import os

from dotenv import load_dotenv

# The same .env the app reads, so HOST, PORT, WEB_CONCURRENCY... set there apply here too.
load_dotenv(os.path.join(os.getcwd(), ".env"))


def _env_number(name, default, kind=int):
    raw = os.environ.get(name, "").strip()
    try:
        return kind(raw) if raw else default
    except ValueError:
        raise SystemExit(f"gemini-proxy: configuration error: {name}={raw!r} is not a valid {kind.__name__}")


# --- socket -------------------------------------------------------------------------------
# Loopback by default: nginx (or the container's port mapping) faces the network.
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_env_number('PORT', 8000)}"
backlog = 2048  # connections queued while every worker is busy accepting

# --- workers ------------------------------------------------------------------------------
# Generation is I/O-bound: one gevent worker per core holds hundreds of calls in flight.
workers = _env_number("WEB_CONCURRENCY", multiprocessing.cpu_count())
# gevent, with Gunicorn's own refusals (a request it cannot parse) answered in JSON, not HTML.
worker_class = "proxy.observability.gunicorn_worker.JsonErrorGeventWorker"
worker_connections = _env_number("WORKER_CONNECTIONS", 1000)  # greenlets per worker
# preload_app stays off: the gevent worker must patch the world before the app imports requests.
preload_app = False
max_requests = _env_number("MAX_REQUESTS", 0)  # 0: workers are not recycled
max_requests_jitter = _env_number("MAX_REQUESTS_JITTER", 0)

# --- metrics ------------------------------------------------------------------------------
# Prometheus' multiprocess mode: each worker writes its samples here and /metrics sums them.
# Set before any worker imports prometheus_client; emptied when the server starts.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gemini-proxy-metrics-")

# --- timeouts (seconds) -------------------------------------------------------------------
_deadline = _env_number("REQUEST_DEADLINE_SECONDS", 30.0, float)
# A gevent worker's heartbeat is not tied to one request, but keep it above the request
# deadline so a worker busy with a long generation is never taken for dead.
timeout = int(_deadline) + 30
# On SIGTERM, in-flight generations (bounded by the deadline) finish before the worker exits.
graceful_timeout = int(_deadline) + 5
# An idle keep-alive connection holds a stopping worker until this runs out (the gevent worker does not
# close it on SIGTERM), so keep it short: clients that pause longer simply reconnect.
keepalive = _env_number("KEEPALIVE_SECONDS", 5)

# --- logging ------------------------------------------------------------------------------
accesslog = "-" if os.environ.get("ACCESS_LOG", "true").lower() not in ("0", "false", "no", "off") else None
errorlog = "-"
# Gunicorn's own lines (request lines it refuses, "Error handling request <URI>", tracebacks, access
# lines) with every credential masked, whatever the format below prints.
logger_class = "proxy.observability.gunicorn_log.RedactingLogger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Client address, method and path, status, size, duration in microseconds, and the request id.
# The path is logged without its query string: Gemini clients may put their key in ?key=.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus rid=%({x-request-id}o)s'

# --- proxying -----------------------------------------------------------------------------
# Trust X-Forwarded-* only from these addresses (nginx on the same host by default).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# --- control ------------------------------------------------------------------------------
# Gunicorn 27's control socket sits at one fixed path per user: two instances on a host would
# collide, and the proxy needs no runtime admin channel. Signals (HUP, TERM) still work.
control_socket_disable = True


# --- hooks --------------------------------------------------------------------------------
def on_starting(server):
    # Samples left by an earlier run would be summed into this one's.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its live gauges stop counting


def post_worker_init(worker):
    # What the app allocated while loading lives as long as the worker: leave it out of the garbage
    # collector's full passes, which otherwise stall every request in flight for tens of milliseconds.
    import gc

    gc.freeze()
    # Marks the moment a worker has loaded the app and can serve; deploy scripts and the
    # end-to-end tests wait for it (a SIGTERM that lands while a worker is still importing is
    # only acted on after the graceful timeout).
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def worker_int(worker):
    # Ctrl-C in a terminal reaches each worker twice: SIGINT from the terminal, then SIGQUIT from the
    # master. Each spawns a greenlet that ends in sys.exit(0); the second one ran while the worker was
    # already exiting and printed a traceback of that SystemExit. It ends quietly here instead.
    if getattr(worker, "quitting", False):
        import gevent

        raise gevent.GreenletExit
    worker.quitting = True
